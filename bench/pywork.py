"""A CPU-bound Python program for the benchmark harness: pure-Python
arithmetic, recursion, strings, dicts, sorting, regular expressions and
JSON, so that the interpreter runs through many of its C functions.

    python3 pywork.py ROUNDS
"""
import json
import re
import sys


def fib(n):
    return n if n < 2 else fib(n - 1) + fib(n - 2)


def primes(limit):
    sieve = bytearray([1]) * (limit + 1)
    sieve[0:2] = b"\0\0"
    for i in range(2, int(limit ** 0.5) + 1):
        if sieve[i]:
            sieve[i * i :: i] = bytearray(len(sieve[i * i :: i]))
    return [i for i, flag in enumerate(sieve) if flag]


def word_counts(seed, count):
    state = seed
    counts = {}
    for _ in range(count):
        state = (state * 1103515245 + 12345) & 0x7FFFFFFF
        word = "w%x" % (state % 5000)
        counts[word] = counts.get(word, 0) + 1
    return sorted(counts.items(), key=lambda item: (-item[1], item[0]))


class Vector:
    __slots__ = ("x", "y", "z")

    def __init__(self, x, y, z):
        self.x, self.y, self.z = x, y, z

    def __add__(self, other):
        return Vector(self.x + other.x, self.y + other.y, self.z + other.z)

    def scale(self, k):
        return Vector(self.x * k, self.y * k, self.z * k)


def nbody_like(steps):
    position = Vector(0.0, 0.0, 0.0)
    velocity = Vector(1.0, 0.5, 0.25)
    for step in range(steps):
        position = position + velocity.scale(0.01)
        velocity = velocity.scale(0.999) + Vector(0.0, -0.001 * (step % 7), 0.0)
    return position.x + position.y + position.z


LINE = re.compile(r"(\w+)=(\d+)")


def parse_lines(count):
    text = " ".join("key%d=%d" % (i % 97, i) for i in range(count))
    total = 0
    for key, value in LINE.findall(text):
        total += int(value) + len(key)
    return total


def json_round_trip(count):
    data = [{"id": i, "name": "item%d" % i, "tags": ["a", "b", str(i % 13)]} for i in range(count)]
    return len(json.loads(json.dumps(data)))


def one_round(i):
    return (fib(18) + len(primes(20000)) + len(word_counts(i, 20000)) + int(nbody_like(20000))
            + parse_lines(5000) + json_round_trip(2000))


def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    checksum = 0
    for i in range(rounds):
        checksum += one_round(i)
    print(checksum)


if __name__ == "__main__":
    main()
