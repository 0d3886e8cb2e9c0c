/* hash_map: insert, replace, look up, and growth. */
#include "hash_map.h"
#include "unit.h"

static void test_empty_map(void)
{
    struct sprof_map map;
    sprof_map_init(&map);
    uint32_t value = 12345;
    CHECK(!sprof_map_get(&map, 0, &value));
    CHECK(!sprof_map_get(&map, 42, &value));
    CHECK_EQ(value, 12345); /* untouched on a miss */
    sprof_map_free(&map);
    sprof_map_free(&map); /* freeing twice is harmless */
}

static void test_put_get_overwrite(void)
{
    struct sprof_map map;
    sprof_map_init(&map);
    uint32_t value = 0;
    CHECK(sprof_map_put(&map, 7, 70));
    CHECK(sprof_map_put(&map, 8, 80));
    CHECK(sprof_map_get(&map, 7, &value));
    CHECK_EQ(value, 70);
    CHECK(sprof_map_get(&map, 8, &value));
    CHECK_EQ(value, 80);
    CHECK_EQ(map.count, 2);

    CHECK(sprof_map_put(&map, 7, 71));
    CHECK(sprof_map_get(&map, 7, &value));
    CHECK_EQ(value, 71);
    CHECK_EQ(map.count, 2); /* replaced, not added */

    CHECK(!sprof_map_get(&map, 9, &value));
    CHECK_EQ(value, 71);
    sprof_map_free(&map);
    CHECK_EQ(map.count, 0);
    CHECK(!sprof_map_get(&map, 7, &value));
}

static void test_key_zero_and_extremes(void)
{
    struct sprof_map map;
    sprof_map_init(&map);
    uint32_t value = 99;
    /* Key 0 must not be confused with an empty slot. */
    CHECK(!sprof_map_get(&map, 0, &value));
    CHECK(sprof_map_put(&map, 0, 0));
    CHECK(sprof_map_get(&map, 0, &value));
    CHECK_EQ(value, 0);
    CHECK(sprof_map_put(&map, UINT64_MAX, UINT32_MAX));
    CHECK(sprof_map_get(&map, UINT64_MAX, &value));
    CHECK_EQ(value, UINT32_MAX);
    CHECK(sprof_map_put(&map, 0, 5));
    CHECK(sprof_map_get(&map, 0, &value));
    CHECK_EQ(value, 5);
    CHECK_EQ(map.count, 2);
    CHECK(!sprof_map_get(&map, 1, &value));
    sprof_map_free(&map);
}

/* A key other than avoid whose home slot in a 64-slot table is slot. */
static uint64_t key_with_home(size_t slot, uint64_t avoid)
{
    for (uint64_t key = 1;; key++) {
        if (key != avoid && (sprof_hash64(key) & 63) == slot)
            return key;
    }
}

static void test_collisions(void)
{
    struct sprof_map map;
    sprof_map_init(&map);
    uint32_t value = 0;
    /* Key 0 lives in its home slot; a key with the same home slot must
     * probe past it, not take it over, though the slot's key reads 0. */
    size_t zero_home = sprof_hash64(0) & 63;
    uint64_t same_home = key_with_home(zero_home, 0);
    uint64_t third = key_with_home(zero_home, same_home);
    CHECK(sprof_map_put(&map, 0, 100));
    CHECK(sprof_map_put(&map, same_home, 200));
    CHECK(sprof_map_put(&map, third, 300));
    CHECK_EQ(map.capacity, 64); /* still the first table: they did collide */
    CHECK_EQ(map.count, 3);
    CHECK(sprof_map_get(&map, 0, &value));
    CHECK_EQ(value, 100);
    CHECK(sprof_map_get(&map, same_home, &value));
    CHECK_EQ(value, 200);
    CHECK(sprof_map_get(&map, third, &value));
    CHECK_EQ(value, 300);
    /* Replacing the last of the chain leaves the others alone. */
    CHECK(sprof_map_put(&map, third, 301));
    CHECK_EQ(map.count, 3);
    CHECK(sprof_map_get(&map, 0, &value));
    CHECK_EQ(value, 100);
    CHECK(sprof_map_get(&map, third, &value));
    CHECK_EQ(value, 301);
    sprof_map_free(&map);
}

/* A value derived from the key, so a lookup that lands on the wrong slot
 * shows. */
static uint32_t value_for(uint64_t key)
{
    return (uint32_t)(key * 2654435761u) ^ (uint32_t)(key >> 32);
}

static void test_growth(void)
{
    enum { KEYS = 50000 };
    struct sprof_map map;
    sprof_map_init(&map);
    /* Key 0 first, so every growth rehashes it before the rest. */
    CHECK(sprof_map_put(&map, 0, 0xabcdef));
    /* Keys that look like addresses (a common stride) and their neighbours. */
    for (uint64_t i = 0; i < KEYS; i++) {
        uint64_t key = 0x7f0000000000ull + i * 16;
        CHECK(sprof_map_put(&map, key, value_for(key)));
        CHECK_EQ(map.count, i + 2);
    }
    uint32_t zero_value = 0;
    CHECK(sprof_map_get(&map, 0, &zero_value));
    CHECK_EQ(zero_value, 0xabcdef);
    CHECK(map.capacity >= KEYS);
    CHECK_EQ(map.capacity & (map.capacity - 1), 0);
    CHECK(map.count * 4 <= map.capacity * 3);
    for (uint64_t i = 0; i < KEYS; i++) {
        uint64_t key = 0x7f0000000000ull + i * 16;
        uint32_t value = 0;
        CHECK(sprof_map_get(&map, key, &value));
        CHECK_EQ(value, value_for(key));
        CHECK(!sprof_map_get(&map, key + 1, &value));
    }
    /* Overwrite every other one after growing. */
    for (uint64_t i = 0; i < KEYS; i += 2)
        CHECK(sprof_map_put(&map, 0x7f0000000000ull + i * 16, (uint32_t)i));
    CHECK_EQ(map.count, KEYS + 1);
    for (uint64_t i = 0; i < KEYS; i++) {
        uint64_t key = 0x7f0000000000ull + i * 16;
        uint32_t value = 0;
        CHECK(sprof_map_get(&map, key, &value));
        CHECK_EQ(value, i % 2 ? value_for(key) : i);
    }
    sprof_map_free(&map);
}

int main(void)
{
    static const struct unit_case cases[] = {
        UNIT_CASE(test_empty_map),
        UNIT_CASE(test_put_get_overwrite),
        UNIT_CASE(test_key_zero_and_extremes),
        UNIT_CASE(test_collisions),
        UNIT_CASE(test_growth),
    };
    return unit_run(cases, sizeof cases / sizeof cases[0]);
}
