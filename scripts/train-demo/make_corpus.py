#!/usr/bin/env python3
"""Turns WordNet 3.0 (Debian's wordnet-base, /usr/share/wordnet) into chat conversations for the
bundled demo model: what a word means, synonyms, opposites, more general words, a word used in a
sentence, plus a few turns that say what the model is and what it cannot do.

Only the standard library: it runs on any machine with python3 and wordnet-base. The same seed
gives the same file, byte for byte. Output: one JSON object per line, {"messages": [...]} in the
roles the chat template knows (system, user, assistant).

Words: single lower-case words whose WordNet index entry has at least one sense tagged in the
semantic concordance (tagsense_cnt > 0), about 19 000 (word, part of speech) pairs: the words a
reader meets, small enough for a ~12M-parameter model to learn most of their first senses.
"""
import argparse
import json
import random
import re
from pathlib import Path

POS_FILES = {"n": "noun", "v": "verb", "a": "adj", "r": "adv"}
POS_NAMES = {"n": "noun", "v": "verb", "a": "adjective", "s": "adjective", "r": "adverb"}
WORD = re.compile(r"^[a-z]+$")

GREETINGS = [
    ("Hello", None), ("Hi", None), ("Hi!", None), ("Hello!", None), ("Hey", None),
    ("Good morning", None), ("Who are you?", None), ("What are you?", None),
    ("What can you do?", None), ("Help", None), ("What is your name?", None),
    ("How do I use you?", None), ("What do you know?", None), ("Are you a chatbot?", None),
]
SELF_ANSWER = ("I am a small dictionary model trained on WordNet. Ask me what a word means, for a "
               "synonym, an opposite or a more general word, or to use a word in a sentence. "
               "For example: What does harbor mean?")
OFF_DOMAIN = [
    "What is the capital of France?", "Write a poem about the sea.", "What is 2 + 2?",
    "Tell me a joke.", "Who won the world cup?", "Translate hello into German.",
    "Write a Python function that sorts a list.", "What is the weather today?",
    "Summarize this article for me.", "What year is it?", "Who is the president?",
    "Explain quantum physics.", "How do I cook rice?", "Can you write an essay?",
    "What is the square root of 81?", "Recommend a good movie.", "How far is the moon?",
    "Solve x + 3 = 5.", "What time is it?", "Write a story about a dragon.",
]
OFF_ANSWER = ("I can't answer that: I am a small dictionary model trained on WordNet, and I only "
              "know English words. Ask me what a word means, for a synonym or an opposite, or to "
              "use a word in a sentence.")
# No question quotes its word: a quoted word is other tokens ('"harbor' rather than ' harbor'),
# which a model this small does not learn to connect to the word it knows.
SYSTEM_PROMPTS = [
    "You are a dictionary.", "Answer briefly.", "You are a helpful assistant.",
    "You help people learn English words.", "Be concise and accurate.",
]


def read_synsets(wordnet: Path):
    """offset+pos -> synset: words, pointers, definition, examples."""
    synsets = {}
    for pos, name in POS_FILES.items():
        for line in (wordnet / f"data.{name}").read_text(encoding="latin-1").splitlines():
            if line.startswith("  "):  # the licence header
                continue
            head, _, gloss = line.partition(" | ")
            fields = head.split()
            offset, ss_type = fields[0], fields[2]
            w_cnt = int(fields[3], 16)
            words = [re.sub(r"\([a-z]+\)$", "", fields[4 + 2 * i]).replace("_", " ") for i in range(w_cnt)]
            at = 4 + 2 * w_cnt
            p_cnt = int(fields[at])
            pointers = []
            for i in range(p_cnt):
                symbol, target, target_pos, source_target = fields[at + 1 + 4 * i: at + 5 + 4 * i]
                pointers.append((symbol, target + ("a" if target_pos == "s" else target_pos),
                                 int(source_target[:2], 16), int(source_target[2:], 16)))
            gloss = gloss.strip()
            examples = re.findall(r'"([^"]+)"', gloss)
            definition = gloss.split('"')[0].strip().rstrip(";").strip()
            synsets[offset + pos] = {"pos": ss_type, "words": words, "pointers": pointers,
                                     "definition": definition, "examples": examples}
    return synsets


def read_index(wordnet: Path):
    """(lemma, pos) -> (tagged sense count, synset keys by frequency), for the words we teach."""
    entries = {}
    for pos, name in POS_FILES.items():
        for line in (wordnet / f"index.{name}").read_text(encoding="latin-1").splitlines():
            if line.startswith(" "):
                continue
            fields = line.split()
            lemma, synset_cnt, p_cnt = fields[0], int(fields[2]), int(fields[3])
            tagged = int(fields[5 + p_cnt])
            offsets = fields[6 + p_cnt: 6 + p_cnt + synset_cnt]
            if tagged > 0 and WORD.match(lemma):
                entries[(lemma, pos)] = (tagged, [o + pos for o in offsets])
    return entries


def sentence(text: str) -> str:
    text = text.strip()
    return text[:1].upper() + text[1:] + ("" if text.endswith((".", "!", "?")) else ".")


def with_article(word: str) -> str:
    return ("an " if word[0] in "aeiou" else "a ") + word


class Teacher:
    """Makes (question, answer) pairs for one (lemma, pos) from its synsets."""

    def __init__(self, synsets, rng: random.Random):
        self.synsets = synsets
        self.rng = rng

    def ask(self, templates, word):
        question = self.rng.choice(templates).format(w=word, aw=with_article(word))
        roll = self.rng.random()
        if roll < 0.15:
            question = question.lower()
        elif roll < 0.25:
            question = question.rstrip("?.")
        return question

    def meaning(self, lemma, pos, senses, generic):
        first = self.synsets[senses[0]]
        pos_name = POS_NAMES[first["pos"]]
        templates = ["What does {w} mean?", "Define {w}.", "What is the meaning of {w}?",
                     "Meaning of {w}?", "Explain the word {w}."]
        if pos == "n":
            templates += ["What is {aw}?"]
        if pos == "v":
            templates += ["What does it mean to {w}?"]
        if not generic:
            templates = [f"What does the {pos_name} {{w}} mean?", f"Define the {pos_name} {{w}}.",
                         f"What is the meaning of {{w}} as {with_article(pos_name)}?"]
        answer = f"{lemma} ({pos_name}): {first['definition']}."
        examples = [e for e in first["examples"] if lemma in e.lower()] or first["examples"]
        if examples:
            answer += f' Example: "{sentence(examples[0])}"'
        if len(senses) > 1 and self.synsets[senses[1]]["definition"]:
            answer += f" It can also mean: {self.synsets[senses[1]]['definition']}."
        return self.ask(templates, lemma), answer

    def synonyms(self, lemma, senses):
        first = self.synsets[senses[0]]
        others = [w for w in dict.fromkeys(first["words"]) if w.lower() != lemma][:4]
        # A head adjective alone in its synset ("happy") has its near-synonyms as satellites.
        similar = [self.synsets[t]["words"][0] for s, t, _, _ in first["pointers"] if s == "&" and t in self.synsets]
        templates = ["Give a synonym of {w}.", "What is another word for {w}?", "What is a synonym for {w}?",
                     "Synonyms of {w}?", "Which word means the same as {w}?"]
        if len(others) == 1:
            answer = f"Another word for {lemma} is {others[0]}: both mean {first['definition']}."
        elif others:
            listed = ", ".join(others[:-1]) + " and " + others[-1]
            answer = f"Words that mean the same as {lemma}: {listed}. All mean {first['definition']}."
        elif similar:
            listed = ", ".join(similar[:4])
            answer = f"Words close in meaning to {lemma}: {listed}. {sentence(lemma)[:-1]} means {first['definition']}."
        else:
            answer = f"I know no word that means exactly the same as {lemma}. It means: {first['definition']}."
        return self.ask(templates, lemma), answer

    def opposite(self, lemma, senses):
        for key in senses[:2]:
            synset = self.synsets[key]
            for symbol, target, source, target_word in synset["pointers"]:
                source_word = synset["words"][source - 1] if source else None
                if symbol == "!" and (source_word or "").lower() == lemma and target in self.synsets:
                    antonym = self.synsets[target]["words"][target_word - 1]
                    templates = ["What is the opposite of {w}?", "What is an antonym of {w}?",
                                 "Give the opposite of {w}.", "Antonym of {w}?"]
                    answer = f"The opposite of {lemma} is {antonym}: {self.synsets[target]['definition']}."
                    return self.ask(templates, lemma), answer
        return None

    def general(self, lemma, pos, senses):
        first = self.synsets[senses[0]]
        for symbol, target, _, _ in first["pointers"]:
            if symbol in ("@", "@i") and target in self.synsets:
                hyper = self.synsets[target]
                word = hyper["words"][0]
                if pos == "n":
                    templates = ["What kind of thing is {aw}?", "{aw} is a kind of what?",
                                 "What is a more general word for {w}?"]
                    answer = f"{sentence(with_article(lemma))[:-1]} is a kind of {word}: {hyper['definition']}."
                else:
                    templates = ["What is a more general word for {w}?", "To {w} is a way of doing what?"]
                    answer = f"To {lemma} is a way to {word}: {hyper['definition']}."
                return self.ask(templates, lemma), answer
        return None

    def use(self, lemma, senses):
        for key in senses[:2]:
            synset = self.synsets[key]
            for example in synset["examples"]:
                if re.search(rf"\b{re.escape(lemma)}", example.lower()):
                    templates = ["Use {w} in a sentence.", "Give an example sentence with {w}.",
                                 "How do you use {w} in a sentence?", "Show me {w} in a sentence."]
                    answer = f'"{sentence(example)}" Here, {lemma} means {synset["definition"]}.'
                    return self.ask(templates, lemma), answer
        return None


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--wordnet", type=Path, default=Path("/usr/share/wordnet"))
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if not (args.wordnet / "data.noun").exists():
        raise SystemExit(f"{args.wordnet}/data.noun not found: install Debian's wordnet-base package")

    rng = random.Random(args.seed)
    synsets = read_synsets(args.wordnet)
    index = read_index(args.wordnet)
    teacher = Teacher(synsets, rng)

    # The part of speech a word is most often tagged as answers the plain "what does X mean".
    top_pos = {}
    for (lemma, pos), (tagged, _) in index.items():
        if lemma not in top_pos or tagged > index[(lemma, top_pos[lemma])][0]:
            top_pos[lemma] = pos

    pairs = []
    for (lemma, pos), (tagged, offsets) in sorted(index.items()):
        senses = offsets[: min(2, tagged)]
        if lemma not in synsets[senses[0]]["words"]:  # a name ("Egypt"): not a dictionary word
            continue
        generic = top_pos[lemma] == pos
        made = [teacher.meaning(lemma, pos, senses, generic)]
        # Questions that name no part of speech get one answer: the word's most tagged one's.
        if generic:
            made += [teacher.synonyms(lemma, senses), teacher.opposite(lemma, senses), teacher.use(lemma, senses)]
            if pos in ("n", "v"):
                made.append(teacher.general(lemma, pos, senses))
            if rng.random() < 0.5:  # the same meaning asked a second way
                made.append(teacher.meaning(lemma, pos, senses, generic))
        pairs += [p for p in made if p]
    for _ in range(20):
        pairs += [(q if rng.random() < 0.7 else q.lower(), SELF_ANSWER) for q, _ in GREETINGS]
        pairs += [(q, OFF_ANSWER) for q in OFF_DOMAIN]
    rng.shuffle(pairs)

    with args.out.open("w", encoding="utf-8") as out:
        at = 0
        conversations = 0
        while at < len(pairs):
            turns = rng.choice([1, 1, 2, 3])
            messages = []
            if rng.random() < 0.15:
                messages.append({"role": "system", "content": rng.choice(SYSTEM_PROMPTS)})
            for question, answer in pairs[at: at + turns]:
                messages += [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
            at += turns
            conversations += 1
            out.write(json.dumps({"messages": messages}, ensure_ascii=False) + "\n")
    print(f"{len(index)} (word, part of speech) pairs, {len(pairs)} question-answer pairs, "
          f"{conversations} conversations -> {args.out}")


if __name__ == "__main__":
    main()
