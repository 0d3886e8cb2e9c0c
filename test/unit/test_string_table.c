/* string_table: interning, ids, and texts that differ only a little. */
#include "sprof/trace_format.h"
#include "string_table.h"
#include "unit.h"

static void test_ids(void)
{
    struct sprof_string_table table;
    sprof_string_table_init(&table);
    CHECK_STR(sprof_string_table_get(&table, SPROF_STRING_NONE), "");
    CHECK_STR(sprof_string_table_get(&table, 1), ""); /* not yet known */

    uint32_t a = sprof_string_table_intern(&table, "alpha", 5);
    uint32_t b = sprof_string_table_intern(&table, "beta", 4);
    CHECK_EQ(a, 1);
    CHECK_EQ(b, 2);
    CHECK_EQ(sprof_string_table_intern(&table, "alpha", 5), a);
    CHECK_EQ(table.count, 2);
    CHECK_STR(sprof_string_table_get(&table, a), "alpha");
    CHECK_STR(sprof_string_table_get(&table, b), "beta");
    CHECK_STR(sprof_string_table_get(&table, 0), "");
    CHECK_STR(sprof_string_table_get(&table, 3), "");
    CHECK_STR(sprof_string_table_get(&table, UINT32_MAX), "");

    /* The empty text is a string like any other, with an id of its own. */
    uint32_t empty = sprof_string_table_intern(&table, "", 0);
    CHECK_EQ(empty, 3);
    CHECK_EQ(sprof_string_table_intern(&table, "x", 0), empty);
    CHECK_EQ(sprof_string_table_intern(&table, NULL, 0), 0);
    sprof_string_table_free(&table);
}

static void test_length_not_nul(void)
{
    struct sprof_string_table table;
    sprof_string_table_init(&table);
    /* The length decides, not a NUL: prefixes of one buffer are distinct. */
    const char *text = "function_name_long";
    uint32_t whole = sprof_string_table_intern(&table, text, 18);
    uint32_t part = sprof_string_table_intern(&table, text, 8);
    uint32_t shorter = sprof_string_table_intern(&table, text, 1);
    CHECK(whole != part && part != shorter && whole != shorter);
    CHECK_STR(sprof_string_table_get(&table, whole), "function_name_long");
    CHECK_STR(sprof_string_table_get(&table, part), "function");
    CHECK_STR(sprof_string_table_get(&table, shorter), "f");
    CHECK_EQ(sprof_string_table_intern(&table, "function", 8), part);

    /* An embedded NUL is kept as part of the text. */
    uint32_t with_nul = sprof_string_table_intern(&table, "a\0b", 3);
    uint32_t just_a = sprof_string_table_intern(&table, "a", 1);
    CHECK(with_nul != just_a);
    CHECK_EQ(table.lengths[with_nul - 1], 3);
    CHECK(memcmp(sprof_string_table_get(&table, with_nul), "a\0b", 4) == 0);
    sprof_string_table_free(&table);
}

static void test_many_strings(void)
{
    enum { COUNT = 20000 };
    struct sprof_string_table table;
    sprof_string_table_init(&table);
    char text[64];
    for (uint32_t i = 0; i < COUNT; i++) {
        int length = snprintf(text, sizeof text, "std::vector<int>::operator[](%u)", i);
        CHECK_EQ(sprof_string_table_intern(&table, text, (size_t)length), i + 1);
    }
    CHECK_EQ(table.count, COUNT);
    /* Every text still found, under the same id, after all the growth. */
    for (uint32_t i = 0; i < COUNT; i++) {
        int length = snprintf(text, sizeof text, "std::vector<int>::operator[](%u)", i);
        CHECK_EQ(sprof_string_table_intern(&table, text, (size_t)length), i + 1);
        CHECK_STR(sprof_string_table_get(&table, i + 1), text);
    }
    CHECK_EQ(table.count, COUNT);
    sprof_string_table_free(&table);
    CHECK_EQ(table.count, 0);
}

/* Texts whose hashes collide are chained. A real 64-bit FNV collision is
 * hard to find, so plant one: point the hash of "beta" at the id of
 * "alpha", as a collision would leave the map. */
static void test_hash_chain(void)
{
    struct sprof_string_table table;
    sprof_string_table_init(&table);
    uint32_t alpha = sprof_string_table_intern(&table, "alpha", 5);
    CHECK(sprof_map_put(&table.by_hash, sprof_hash_bytes("beta", 4), alpha));
    uint32_t beta = sprof_string_table_intern(&table, "beta", 4);
    CHECK(beta != alpha);
    CHECK_STR(sprof_string_table_get(&table, beta), "beta");
    CHECK_EQ(table.next_same_hash[beta - 1], alpha);
    CHECK_EQ(sprof_string_table_intern(&table, "beta", 4), beta);

    /* Now point "alpha"'s hash at the head of that chain: interning "alpha"
     * must walk past "beta" and find the existing id, not add a copy. */
    CHECK(sprof_map_put(&table.by_hash, sprof_hash_bytes("alpha", 5), beta));
    CHECK_EQ(sprof_string_table_intern(&table, "alpha", 5), alpha);
    CHECK_EQ(table.count, 2);

    /* A prefix with a colliding hash is a different text, not a match. */
    CHECK(sprof_map_put(&table.by_hash, sprof_hash_bytes("alp", 3), alpha));
    uint32_t alp = sprof_string_table_intern(&table, "alp", 3);
    CHECK_EQ(alp, 3);
    CHECK_STR(sprof_string_table_get(&table, alp), "alp");
    sprof_string_table_free(&table);
}

int main(void)
{
    static const struct unit_case cases[] = {
        UNIT_CASE(test_ids),
        UNIT_CASE(test_length_not_nul),
        UNIT_CASE(test_many_strings),
        UNIT_CASE(test_hash_chain),
    };
    return unit_run(cases, sizeof cases / sizeof cases[0]);
}
