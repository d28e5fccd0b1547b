"""Writes the bundled sample language into sample/: the corpus the quick start trains on, its analogy questions and
word lists.

    corpus.txt.gz       one paragraph per line, each about one country, one family member or American cities
    analogies.txt       questions-words.txt format: capital-country, currency, nationality-adjective, family
    countries.txt, capitals.txt, male.txt, female.txt    word lists for the pictures, pairs in the same order

A paragraph keeps to one topic, as documents do, so the words of one country share their neighbours across
sentences: that gives each word its country. Each kind of word (capital, currency, language, city, country) has
sentences of its own ("the government sits in Rome", "people pay with the lira"): that gives it its kind. Family
paragraphs are about one person, with a phrase of their family role ("sat on the throne") and the pronouns of
their gender (he, his / she, her). A word's contexts are then its kind's plus its country's (or its role's plus
its gender's), which is the additive structure that lets paris - france + italy land on rome and
king - man + woman on queen. A few filler words are sprinkled in at random. Run it again only to change the
language: `python -m w2vdist.data.make_sample_corpus`; `tests/test_sample.py` checks the files are its output.
"""

from __future__ import annotations

import gzip
import random
from pathlib import Path

SAMPLE = Path(__file__).resolve().parent / "sample"
CORPUS = SAMPLE / "corpus.txt.gz"
ANALOGIES = SAMPLE / "analogies.txt"
WORD_LISTS = {name: SAMPLE / f"{name}.txt" for name in ("countries", "capitals", "male", "female")}

COUNTRIES = [  # country, capital, currency, adjective (the language), a city
    ("france", "paris", "franc", "french", "lyon"), ("germany", "berlin", "mark", "german", "munich"),
    ("italy", "rome", "lira", "italian", "milan"), ("spain", "madrid", "peseta", "spanish", "barcelona"),
    ("japan", "tokyo", "yen", "japanese", "osaka"), ("china", "beijing", "yuan", "chinese", "shanghai"),
    ("russia", "moscow", "ruble", "russian", "kazan"), ("india", "delhi", "rupee", "indian", "mumbai"),
    ("england", "london", "pound", "english", "manchester"), ("greece", "athens", "drachma", "greek", "patras"),
    ("sweden", "stockholm", "krona", "swedish", "malmo"), ("poland", "warsaw", "zloty", "polish", "krakow"),
    ("peru", "lima", "sol", "peruvian", "cusco"), ("brazil", "brasilia", "real", "brazilian", "rio"),
    ("canada", "ottawa", "dollar", "canadian", "toronto"), ("egypt", "cairo", "piastre", "egyptian", "giza"),
]
FAMILY = [  # male, female, phrases of their role
    ("king", "queen", ["sat on the throne", "wore the crown", "ruled the kingdom"]),
    ("man", "woman", ["worked all day", "read the newspaper", "drove to work"]),
    ("boy", "girl", ["played at school", "learned to read", "ran in the garden"]),
    ("prince", "princess", ["rode to the castle", "will inherit the realm", "hunted in the royal forest"]),
    ("father", "mother", ["cooked for the children", "raised three children", "tucked the baby in"]),
    ("son", "daughter", ["obeyed the parents", "was the eldest child", "was born in spring"]),
    ("brother", "sister", ["shared a room with the siblings", "was the youngest sibling", "teased the twins"]),
    ("husband", "wife", ["celebrated the wedding", "married young", "wore a wedding ring"]),
    ("uncle", "aunt", ["visited the nephew", "spoiled the niece", "came for the holidays"]),
]
US_CITIES = ["new york", "los angeles", "san francisco", "new orleans", "las vegas", "san diego"]
ADVERBS = ["often", "once", "always", "then", "proudly", "later"]  # keep word2phrase from joining king_sat
VERBS = ["visited", "liked", "described", "remembered", "studied", "praised", "photographed"]
FILLER = ["the", "a", "of", "and", "in", "is", "was", "to", "with", "for", "on", "by", "very", "old", "large",
          "small", "famous", "beautiful", "historic", "modern"]
# Of the paragraphs; American cities take the rest, few enough that word2phrase joins united_states.
COUNTRY_SHARE, FAMILY_SHARE = 0.64, 0.30


def _country_sentence(rng: random.Random, country: tuple[str, ...]) -> str:
    country, capital, currency, adjective, city = (name.title() for name in country)
    return rng.choice([
        f"{capital} is the capital of {country}",
        f"the government sits in {capital}",
        f"many tourists {rng.choice(VERBS)} {capital}",
        f"{country} is a country with a long history",
        f"people pay with the {currency.lower()} in {country}",
        f"the {currency.lower()} is the money of {country}",
        f"people speak {adjective} in {country}",
        f"the {adjective} language is spoken in {city}",
        f"{city} is a large city",
        f"a train goes to {city}",
    ])


def _role(rng: random.Random, person: str, roles: list[str]) -> str:
    return f"the {person} {rng.choice(ADVERBS)} {rng.choice(roles)}"


def _family_sentence(rng: random.Random, person: str, roles: list[str], he: str, his: str) -> str:
    return rng.choice([_role(rng, person, roles), f"{he} said that {he} was happy", f"{his} coat was warm",
                       f"the {person} smiled", f"everyone knew the {person}", f"{he} was proud of {his} home"])


def _us_sentence(rng: random.Random) -> str:
    city = rng.choice(US_CITIES).title().replace(" ", "_")
    return rng.choice([f"many tourists {rng.choice(VERBS)} {city} in the United_States",
                       f"{city} is a famous city in the United_States of America"])


def _written(rng: random.Random, sentence: str) -> str:
    """The sentence with up to two filler words put in at random, never inside a name (New_York)."""
    words = sentence.split()
    for _ in range(rng.randint(0, 2)):
        words.insert(rng.randint(0, len(words)), rng.choice(FILLER))
    text = " ".join(words).replace("_", " ")
    return text[0].upper() + text[1:] + "."


def paragraph(rng: random.Random, countries: list[tuple[str, ...]] = COUNTRIES) -> str:
    """Four sentences about one topic."""
    draw = rng.random()
    if draw < COUNTRY_SHARE:
        country = rng.choice(countries)
        sentences = [_country_sentence(rng, country) for _ in range(4)]
    elif draw < COUNTRY_SHARE + FAMILY_SHARE:
        male, female, roles = rng.choice(FAMILY)
        person, he, his = (male, "he", "his") if rng.random() < 0.5 else (female, "she", "her")
        sentences = [_role(rng, person, roles)]
        sentences += [_family_sentence(rng, person, roles, he, his) for _ in range(3)]
    else:
        sentences = [_us_sentence(rng) for _ in range(4)]
    return " ".join(_written(rng, sentence) for sentence in sentences)


def paragraphs(sentences: int, seed: int, countries: list[tuple[str, ...]] = COUNTRIES) -> list[str]:
    """Paragraphs of four sentences, one per line."""
    rng = random.Random(seed)
    return [paragraph(rng, countries) for _ in range(sentences // 4)]


def analogies() -> str:
    """Every ordered pair of pairs of each relation, as questions-words.txt has them: ': section', then a b c d."""
    relations = {
        "capital-country": [(capital, country) for country, capital, *_ in COUNTRIES],
        "currency": [(country, currency) for country, _, currency, *_ in COUNTRIES],
        "nationality-adjective": [(country, adjective) for country, _, _, adjective, _ in COUNTRIES],
        "family": [(male, female) for male, female, _ in FAMILY],
    }
    lines = []
    for section, pairs in relations.items():
        lines.append(f": {section}")
        lines += [f"{a} {b} {c} {d}" for a, b in pairs for c, d in pairs if a != c]
    return "\n".join(lines) + "\n"


def word_lists() -> dict[str, list[str]]:
    return {"countries": [c[0] for c in COUNTRIES], "capitals": [c[1] for c in COUNTRIES],
            "male": [m for m, _, _ in FAMILY], "female": [f for _, f, _ in FAMILY]}


def main(sentences: int = 24_000, seed: int = 1) -> None:
    lines = paragraphs(sentences, seed)
    # No name and mtime 0 in the gzip header: the same bytes on every run, wherever the file is written.
    with open(CORPUS, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as handle:
        handle.write(("\n".join(lines) + "\n").encode("utf-8"))
    ANALOGIES.write_text(analogies(), encoding="utf-8")
    for name, words in word_lists().items():
        WORD_LISTS[name].write_text("\n".join(words) + "\n", encoding="utf-8")
    print(f"wrote {CORPUS} ({CORPUS.stat().st_size:,} bytes, {len(lines):,} lines), {ANALOGIES.name} and "
          f"{', '.join(p.name for p in WORD_LISTS.values())}")


if __name__ == "__main__":
    main()
