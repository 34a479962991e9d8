"""Synthetic coin_flip and last_letter_concatenation, in the published files' exact format.

Zero-shot-CoT built both tasks from lists of common first names: four people flip (or do not
flip) a coin that starts heads up; or the last letters of four names are concatenated. The
generators draw from a name list with a seeded RNG, so any size works offline and a seed always
gives the same rows. Indices start at `GENERATED_OFFSET * (seed + 1)` so generated ids never
collide with the published files' ids nor with another seed's.
"""

from __future__ import annotations

import random

from pst_core.tasks.spec import GENERATED_OFFSET, Row, Rows

NAMES = (
    "Whitney Erika Tj Benito Alice Bob Claire Dana Elijah Fatima Gabriel Hana Ivan Julia Kenji Lena Marco "
    "Nadia Omar Priya Quinn Rosa Samuel Tara Umar Vera Walter Ximena Yusuf Zoe Aaron Bianca Carlos Diana "
    "Emmanuel Fiona Gustavo Helen Isaac Jasmine Kevin Lucia Mateo Nora Oscar Paula Rafael Sofia Tomas Ursula "
    "Victor Wendy Xavier Yolanda Zachary Adrian Brenda Cesar Delia Ernesto Flor Gerardo Irma Jesse Karla "
    "Leslie Marisol Noel Olga Pablo Raquel Sergio Teresa Ulises Valeria Wilma Yesenia Alfredo Bernice Cody "
    "Dominique Evan Gloria Hector Ingrid Jamal Kristin Lamar Miguel Naomi Orlando Pamela Reggie Shawna Terrell"
).split()
PEOPLE = 4  # the published files use four names per question


def _names(rng: random.Random) -> list[str]:
    return rng.sample(NAMES, PEOPLE)


def coin_flip(size: int, seed: int = 0) -> Rows:
    """`size` coin-flip questions; the gold is "yes" when the number of flips is even."""
    rng = random.Random(f"coin_flip:{seed}")
    rows: Rows = {}
    for n in range(size):
        parts, flips = ["A coin is heads up."], 0
        for name in _names(rng):
            flipped = rng.random() < 0.5
            flips += flipped
            parts.append(f"{name} flips the coin." if flipped else f"{name} does not flip the coin.")
        parts.append('Is the coin still heads up? Note that "flip" here means "reverse".')
        index = GENERATED_OFFSET * (seed + 1) + n
        rows[index] = Row(index, " ".join(parts), "yes" if flips % 2 == 0 else "no", source=f"generated:seed={seed}")
    return rows


def last_letter_concatenation(size: int, seed: int = 0) -> Rows:
    """`size` last-letter questions; the gold is the lower-case last letters, concatenated."""
    rng = random.Random(f"last_letter_concatenation:{seed}")
    rows: Rows = {}
    for n in range(size):
        names = _names(rng)
        question = f'Take the last letters of each words in "{" ".join(names)}" and concatenate them.'
        index = GENERATED_OFFSET * (seed + 1) + n
        rows[index] = Row(index, question, "".join(w[-1] for w in names).lower(), source=f"generated:seed={seed}")
    return rows
