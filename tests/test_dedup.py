import random

from persona.dedup import DedupIndex, jaccard_estimate, jaccard_exact, minhash, normalize

A = ("Já jsem inflaci řešil už jako ministr financí a novináři to dodneška nepochopili. "
     "Lidi to vidí a my jsme to zvládli, protože makáme od rána do večera pro lidi.")


def test_exact_duplicate_ignores_case_and_punctuation():
    idx = DedupIndex()
    assert idx.offer(A).kind is None
    v = idx.offer(A.upper().replace(".", "!"))
    assert v.kind == "exact" and v.of == 0


def test_one_word_slip_is_a_near_duplicate():
    idx = DedupIndex()
    idx.offer(A)
    slipped = A.replace("my jsme", "my sme")
    assert jaccard_exact(normalize(A), normalize(slipped)) > 0.9
    v = idx.offer(slipped)
    assert v.kind == "near" and v.of == 0 and v.similarity >= 0.85


def test_different_answers_are_kept():
    idx = DedupIndex()
    idx.offer(A)
    other = ("Piráti pořád mluví o důchodech, ale sami nikdy nic nepostavili. "
             "To je prostě fakt, a kdo to zaplatí? Důchodci, samozřejmě.")
    assert idx.offer(other).kind is None
    assert idx.size == 2


def test_signature_is_not_what_makes_texts_similar():
    idx = DedupIndex(signature="Andrej Babiš")
    idx.offer("Hrůza!\n\nAndrej Babiš")
    assert idx.offer("Skandál, to je tragédie!\n\nAndrej Babiš").kind is None


def test_minhash_estimate_tracks_exact_jaccard():
    rng = random.Random(0)
    words = A.split()
    for _ in range(20):
        b = words[:]
        for _ in range(rng.randint(1, 8)):
            b[rng.randrange(len(b))] = rng.choice(["dálnice", "Brusel", "kampaň", "euro"])
        na, nb = normalize(A), normalize(" ".join(b))
        assert abs(jaccard_estimate(minhash(na), minhash(nb)) - jaccard_exact(na, nb)) < 0.2
