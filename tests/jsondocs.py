"""Random JSON documents and plausible edits of them, for patch tests (Python and in the browser)."""
from __future__ import annotations

import random
from typing import Any


def random_value(rng: random.Random, depth: int = 0) -> Any:
    """Nested objects and lists of small scalars (including the ones Python calls equal: 0, False, 1, True)."""
    roll = rng.random()
    if roll < 0.25 and depth < 3:
        return {k: random_value(rng, depth + 1) for k in rng.sample("abcdef", rng.randint(0, 4))}
    if roll < 0.5 and depth < 3:
        return [random_value(rng, depth + 1) for _ in range(rng.randint(0, 6))]
    return rng.choice([0, 1, "x", "y", 2.5, True, False, None])


def mutate(rng: random.Random, value: Any) -> Any:
    """`value` with some keys and elements dropped, changed or inserted."""
    if isinstance(value, dict):
        out = {k: mutate(rng, v) if rng.random() < 0.5 else v for k, v in value.items() if rng.random() < 0.9}
        if rng.random() < 0.3:
            out[rng.choice("abcdefgh")] = random_value(rng, 2)
        return out
    if isinstance(value, list):
        out = [mutate(rng, v) if rng.random() < 0.3 else v for v in value if rng.random() < 0.9]
        for _ in range(rng.randint(0, 2)):
            out.insert(rng.randint(0, len(out)), random_value(rng, 2))
        return out
    return random_value(rng, 2) if rng.random() < 0.5 else value
