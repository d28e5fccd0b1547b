"""Writes sample_corpus.txt.gz, the small bundled corpus the quick start trains on.

Template sentences about countries, capitals, currencies, cities, families and royalty, so that a few minutes of
training already shows neighbours, analogies (paris - france + italy) and phrases (new_york_city). Run it again
only to change the corpus: `python w2vdist/data/make_sample_corpus.py`.
"""

import gzip
import random
from pathlib import Path

COUNTRIES = [  # country, capital, currency, adjective, a city
    ("france", "paris", "euro", "french", "lyon"), ("germany", "berlin", "euro", "german", "munich"),
    ("italy", "rome", "euro", "italian", "milan"), ("spain", "madrid", "euro", "spanish", "barcelona"),
    ("japan", "tokyo", "yen", "japanese", "osaka"), ("china", "beijing", "yuan", "chinese", "shanghai"),
    ("russia", "moscow", "ruble", "russian", "kazan"), ("india", "delhi", "rupee", "indian", "mumbai"),
    ("england", "london", "pound", "english", "manchester"), ("egypt", "cairo", "pound", "egyptian", "giza"),
    ("greece", "athens", "euro", "greek", "patras"), ("poland", "warsaw", "zloty", "polish", "krakow"),
    ("sweden", "stockholm", "krona", "swedish", "malmo"), ("mexico", "mexico_city", "peso", "mexican", "cancun"),
    ("brazil", "brasilia", "real", "brazilian", "rio"), ("canada", "ottawa", "dollar", "canadian", "toronto"),
]
US_CITIES = ["new york city", "los angeles", "san francisco", "new orleans", "las vegas", "san diego"]
FAMILY = [("king", "queen"), ("man", "woman"), ("boy", "girl"), ("prince", "princess"), ("father", "mother"),
          ("son", "daughter"), ("brother", "sister"), ("husband", "wife"), ("uncle", "aunt")]
VERBS = ["visited", "liked", "described", "remembered", "studied", "praised", "photographed"]
FILLER = ["the", "a", "of", "and", "in", "is", "was", "to", "with", "for", "on", "by", "very", "old", "large",
          "small", "famous", "beautiful", "historic", "modern"]


def sentence(rng: random.Random, countries: list[tuple[str, ...]] = COUNTRIES) -> str:
    country, capital, currency, adjective, city = rng.choice(countries)
    male, female = rng.choice(FAMILY)
    us_city = rng.choice(US_CITIES)
    templates = [
        f"{capital} is the capital of {country}",
        f"the capital of {country} is {capital} and {city} is a large city in {country}",
        f"in {country} people pay with the {currency}",
        f"the {adjective} {male} lived in {capital} with the {adjective} {female}",
        f"the {male} and the {female} {rng.choice(VERBS)} {capital} in {country}",
        f"a {male} is a man and a {female} is a woman",
        f"the {male} spoke {adjective} in {capital}",
        f"many tourists {rng.choice(VERBS)} {us_city} in the united states",
        f"{us_city} is a famous city in the united states of america",
        f"the {adjective} government in {capital} uses the {currency}",
        f"{city} and {capital} are cities of {country}",
    ]
    words = rng.choice(templates).split()
    for _ in range(rng.randint(0, 3)):
        words.insert(rng.randint(0, len(words)), rng.choice(FILLER))
    text = " ".join(words)
    return text[0].upper() + text[1:] + "."


def paragraphs(sentences: int, seed: int, countries: list[tuple[str, ...]] = COUNTRIES) -> list[str]:
    """Paragraphs of four sentences, one per line."""
    rng = random.Random(seed)
    return [" ".join(sentence(rng, countries) for _ in range(4)).replace("mexico_city", "mexico city")
            for _ in range(sentences // 4)]


def main(sentences: int = 40_000, seed: int = 1) -> None:
    lines = paragraphs(sentences, seed)
    path = Path(__file__).with_name("sample_corpus.txt.gz")
    with gzip.GzipFile(path, "wb", mtime=0) as handle:
        handle.write(("\n".join(lines) + "\n").encode("utf-8"))
    print(f"wrote {path} ({path.stat().st_size:,} bytes, {len(lines):,} lines)")


if __name__ == "__main__":
    main()
