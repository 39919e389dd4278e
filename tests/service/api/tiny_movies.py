"""A tiny made-up movie catalog in GroupLens' MovieLens-1M file format, with planted taste.

The service tests' synthetic data has no titles and one user feature; the explorer needs what
a newcomer sees on MovieLens: titled items and users described by gender, age and occupation.
Titles are invented word pairs. Each (gender, age band) group prefers two genres, so a model
fit on it ties user features to items, and editing a profile moves the ranking.
"""

from __future__ import annotations

from itertools import product
from pathlib import Path

import numpy as np

# 144 movies: the top-n protocol samples 99 negatives per user from the items it never saw
ADJECTIVES = ("Silent", "Crimson", "Hidden", "Golden", "Broken", "Distant", "Midnight", "Paper",
              "Northern", "Glass", "Wandering", "Last")
NOUNS = ("Harbour", "Orchard", "Signal", "Frontier", "Lantern", "Garden", "Compass", "River",
         "Winter", "Archive", "Lighthouse", "Carnival")
GENRES = ("Action", "Comedy", "Drama", "Romance", "Sci-Fi", "Thriller", "Animation",
          "Documentary")
AGES = ("18", "25", "35", "50")
OCCUPATIONS = ("artist", "doctor", "engineer", "student", "writer", "retired")
USERS, PER_USER, LIKED_SHARE = 40, 15, 0.8


def taste(gender: str, age: str) -> tuple[str, str]:
    """The two genres a (gender, age band) group prefers: four groups, disjoint pairs."""
    group = (gender == "F") * 2 + (int(age) >= 35)
    return GENRES[2 * group], GENRES[2 * group + 1]


def write_tiny_movies(folder: Path, seed: int = 0) -> Path:
    """Write ratings.dat, users.dat and movies.dat into folder; return it."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    titles = [f"The {a} {n}" for a, n in product(ADJECTIVES, NOUNS)]
    movies = []
    for k, title in enumerate(titles):
        genres = [GENRES[k % len(GENRES)]]
        if k % 3 == 0:
            genres.append(GENRES[(k // 3) % len(GENRES)])
        movies.append((k + 1, f"{title} ({1970 + 7 * k % 53})", sorted(set(genres))))
    users, ratings = [], []
    for u in range(1, USERS + 1):
        gender, age = "MF"[u % 2], AGES[(u // 2) % len(AGES)]
        users.append((u, gender, age, OCCUPATIONS[u % len(OCCUPATIONS)]))
        liked = [m for m, _, g in movies if set(g) & set(taste(gender, age))]
        others = [m for m, _, g in movies if m not in liked]
        n_liked = round(PER_USER * LIKED_SHARE)
        chosen = [*rng.choice(liked, n_liked, replace=False),
                  *rng.choice(others, PER_USER - n_liked, replace=False)]
        ratings += [(u, int(m), int(rng.integers(3, 6)), 978_300_000 + 60 * len(ratings))
                    for m in rng.permutation(chosen)]
    _write(folder / "movies.dat", [(m, t, "|".join(g)) for m, t, g in movies])
    _write(folder / "users.dat", [(*u, "00000") for u in users])
    _write(folder / "ratings.dat", ratings)
    return folder


def _write(path: Path, rows: list[tuple]) -> None:
    path.write_text("".join("::".join(map(str, row)) + "\n" for row in rows), encoding="utf-8")
