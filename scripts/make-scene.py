#!/usr/bin/python3
"""Write a generated scene (protocol/scene.md): a world of zones, rooms
and objects with transforms, the same bytes for the same arguments.

Usage: scripts/make-scene.py [--entities N] [--seed S] > scene.json
The project's example, scripts/scenes/example.json, is
`scripts/make-scene.py --entities 10000`; setup.sh writes it (it is not
kept in git: this script makes the same bytes every time)."""

import argparse
import json
import random
import sys

KINDS = ["crate", "lamp", "door", "chair", "table", "plant", "screen", "npc"]


def scene(count, seed):
    rng = random.Random(seed)
    entities = []
    zones, rooms = 10, 25  # 250 rooms of 40 objects for 10,000 entities
    for n in range(count):
        zone, room = n % zones, (n // zones) % rooms
        kind = KINDS[n % len(KINDS)]
        # Most objects anyone may take; doors ask their holder; a few
        # fixtures stay with their master.
        rule = "ask" if kind == "door" else "deny" if n % 97 == 0 else "allow"
        transform = {
            "p": [round(rng.uniform(-50, 50), 3), round(rng.uniform(0, 10), 3),
                  round(rng.uniform(-50, 50), 3)],
            "r": [0, round(rng.uniform(-1, 1), 4), 0, 1],
            "s": 1,
        }
        entities.append({
            "path": f"/world/zone{zone}/room{room}/{kind}{n}",
            "rule": rule,
            "state": json.dumps(transform, separators=(",", ":")),
        })
    return {"scene": f"generated-{count}", "seed": seed, "entities": entities}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--entities", type=int, default=10000)
    parser.add_argument("--seed", type=int, default=1)
    options = parser.parse_args()
    json.dump(scene(options.entities, options.seed), sys.stdout, separators=(",", ":"))
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
