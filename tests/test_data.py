"""Tasks, splits, batches and metrics of peftcourse.data, on hand-made cases and a tiny random GPT-2."""
import math

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel

from peftcourse import data, pretrain


@pytest.fixture(scope="module")
def tok():
    return pretrain.train_tokenizer(pretrain.read_corpus("val", max_chars=50_000), vocab_size=400)


@pytest.fixture(scope="module")
def tiny(tok):
    torch.manual_seed(0)
    return GPT2LMHeadModel(GPT2Config(vocab_size=len(tok), n_embd=32, n_layer=1, n_head=2, n_positions=128,
                                      eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)).eval()


# ---- UUIDs

def test_uuid_pairs_are_seeded_uuid4_and_distinct():
    a, b = data.uuid_pairs(50, seed=1), data.uuid_pairs(50, seed=1)
    assert a == b and a != data.uuid_pairs(50, seed=2)
    assert len({ex["key"] for ex in a}) == 50
    for ex in a:
        assert ex["value"][14] == "4" and ex["value"][19] in "89ab" and len(ex["value"]) == 36
        assert ex["prompt"] == ex["key"] + ":" and ex["answer"] == ex["value"]


def test_uuid_metric_perfect_and_wrong():
    answers = [ex["answer"] for ex in data.uuid_pairs(5)]
    assert data.uuid_metric(answers, answers) == {"char_acc": 1.0, "exact": 1.0}
    assert data.uuid_metric([""] * 5, answers) == {"char_acc": 0.0, "exact": 0.0}
    one_off = answers[0][:-1] + ("0" if answers[0][-1] != "0" else "1")
    assert data.uuid_metric([one_off], answers[:1]) == {"char_acc": 31 / 32, "exact": 0.0}


def test_uuid_metric_layout_only_guess_scores_9_77_percent():
    # 16 targets: free hex digit i everywhere, version 4, variant 8 + i % 4. A guess with only the
    # layout right hits the version always, the variant 1 time in 4, a random digit 1 time in 16.
    targets = []
    for i in range(16):
        h = "0123456789abcdef"[i]
        targets.append(f"{h * 8}-{h * 4}-4{h * 3}-{'89ab'[i % 4]}{h * 3}-{h * 12}")
    guess = "00000000-0000-4000-8000-000000000000"
    score = data.uuid_metric([guess] * 16, targets)["char_acc"]
    assert score == (1 + 1 / 4 + 30 / 16) / 32 == 0.09765625
    # and on real random uuid4 values it is about the same
    real = [ex["answer"] for ex in data.uuid_pairs(2000, seed=3)]
    assert abs(data.uuid_metric([guess] * 2000, real)["char_acc"] - 0.0977) < 0.005


def test_uuid_bad_input():
    with pytest.raises(ValueError, match="positive int"):
        data.uuid_pairs(0)
    with pytest.raises(ValueError, match="as many predictions"):
        data.uuid_metric(["a"], [])
    with pytest.raises(ValueError, match="uuid"):
        data.uuid_metric(["x"], ["not-a-uuid"])


# ---- arithmetic

def test_arithmetic_is_correct_disjoint_and_seeded():
    train, test = data.arithmetic(300, 100, digits=2, ops="+-", seed=0)
    assert (train, test) == data.arithmetic(300, 100, digits=2, ops="+-", seed=0)
    assert not {e["prompt"] for e in train} & {e["prompt"] for e in test}
    for ex in train + test:
        assert str(eval(ex["prompt"][:-1])) == ex["answer"]
        a, b = ex["prompt"][:-1].replace("-", "+").split("+")
        assert len(a) == len(b) == 2


def test_arithmetic_too_many_or_bad_fails():
    with pytest.raises(ValueError, match="only 100 distinct"):
        data.arithmetic(90, 11, digits=1)
    assert len(data.arithmetic(90, 10, digits=1)[1]) == 10  # exactly all of them is fine
    with pytest.raises(ValueError, match="ops"):
        data.arithmetic(10, 10, ops="/")
    with pytest.raises(ValueError, match="n_test"):
        data.arithmetic(10, 0)


def test_exact_match():
    assert data.exact_match(["82", " 7 "], ["82", "7"]) == {"exact": 1.0}
    assert data.exact_match(["81", "7"], ["82", "7"]) == {"exact": 0.5}


def test_check_no_leak():
    with pytest.raises(ValueError, match="also appear in train"):
        data.check_no_leak([{"t": "a"}, {"t": "b"}], [{"t": "b"}], "t")


# ---- batches and generation

def test_generation_batches_mask_the_prompt(tok):
    ex = {"prompt": "12+30=", "answer": "42"}
    ids, labels = data.encode_example(tok, ex)
    n_prompt = len(tok(ex["prompt"])["input_ids"])
    assert labels[:n_prompt] == [-100] * n_prompt
    assert labels[n_prompt:] == ids[n_prompt:] and ids[-1] == tok.eos_token_id
    assert tok.decode(ids[n_prompt:-1]) == "42"
    batch = next(iter(data.generation_batches(tok, [ex, {"prompt": "1+1=", "answer": "2"}], batch_size=2,
                                              shuffle=False)))
    assert batch["input_ids"].shape == batch["labels"].shape == batch["attention_mask"].shape
    pad = batch["attention_mask"] == 0
    assert (batch["labels"][pad] == -100).all() and (batch["input_ids"][pad] == tok.pad_token_id).all()


def test_batched_greedy_generation_equals_one_by_one(tiny, tok):
    prompts = ["1+1=", "a much longer prompt here:", "x"]
    batched = data.generate_answers(tiny, tok, prompts, max_new_tokens=5, batch_size=3)
    single = [data.generate_answers(tiny, tok, [p], max_new_tokens=5)[0] for p in prompts]
    assert batched == single


def test_evaluate_generation_on_untrained_model(tiny, tok):
    pairs = data.uuid_pairs(4)
    out = data.evaluate_generation(tiny, tok, pairs, metric=data.uuid_metric)
    assert set(out) == {"char_acc", "exact"} and out["exact"] == 0.0 and 0 <= out["char_acc"] < 0.5
    with pytest.raises(ValueError, match="no examples"):
        data.evaluate_generation(tiny, tok, [])



def test_answer_loss_scores_only_the_answers_in_eval_mode(tok):
    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=len(tok), n_embd=32, n_layer=1, n_head=2, n_positions=128,
                                       resid_pdrop=0.5, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id))
    train, test = data.arithmetic(10, 6)
    batches = list(data.generation_batches(tok, test, batch_size=3, shuffle=False))
    model.train()   # as train() leaves it: the helper must switch dropout off, then restore the mode
    loss = data.answer_loss(model, batches)
    assert model.training
    model.eval()
    with torch.no_grad():
        by_hand = sum(model(**b).loss.item() for b in batches) / len(batches)
    assert loss == pytest.approx(by_hand, rel=1e-6)
    other_prompts = [{"prompt": "99-1=", "answer": ex["answer"]} for ex in test]   # same answers, new prompts
    assert data.answer_loss(model, data.generation_batches(tok, other_prompts, batch_size=3, shuffle=False)) != loss
    with pytest.raises(ValueError, match="no batches"):
        data.answer_loss(model, [])

# ---- classification, domain text, digits

def test_doc_topics_split():
    train, test = data.doc_topics(n_test=400, seed=0)
    assert len(train) == 1200 and len(test) == 400
    assert {e["label"] for e in test} == set(range(len(data.TOPIC_LABELS)))
    assert data.doc_topics(n_test=400, seed=0) == (train, test)
    with pytest.raises(ValueError, match="only 1600"):
        data.doc_topics(n_train=1300, n_test=400)


def test_word_order_swaps_one_neighbouring_pair_in_half_the_sentences():
    sentences, _ = data.doc_topics(n_test=400, seed=0)
    task = data.word_order(sentences, seed=3)
    assert task == data.word_order(sentences, seed=3) and task != data.word_order(sentences, seed=4)
    kept = [ex for ex in sentences if len(ex["text"].split()) >= 4]
    assert len(task) == len(kept)
    assert 0.45 < sum(ex["label"] for ex in task) / len(task) < 0.55
    for ex, made in zip(kept, task):
        original, words = ex["text"].split(), made["text"].split()
        assert made["text"] == " ".join(words)   # whitespace normalised in both classes
        moved = [i for i, (a, b) in enumerate(zip(original, words)) if a != b]
        if made["label"] == 0:
            assert moved == []
        else:   # exactly one pair of neighbours trades places, the first of them among the first 10 words
            assert len(moved) == 2 and moved[1] == moved[0] + 1 and moved[0] < 10
            assert words[moved[0]] == original[moved[1]] and words[moved[1]] == original[moved[0]]


def test_word_order_bad_input_fails():
    with pytest.raises(ValueError, match="non-empty list"):
        data.word_order([])
    with pytest.raises(ValueError, match="keys"):
        data.word_order([{"label": 0}])
    with pytest.raises(ValueError, match="4 or more words"):
        data.word_order([{"text": "too short"}, {"text": "same same same same"}])
    with pytest.raises(ValueError, match="window"):
        data.word_order([{"text": "one two three four"}], window=0)


def test_domain_text_and_perplexity(tiny, tok):
    train, test = data.domain_text()
    assert len(train) == 4 and len(test) == 1 and "GNU" in test[0]
    seen = {data._norm(p) for d in train for p in data._paragraphs(d)}
    assert not [p for p in data._paragraphs(test[0]) if data._norm(p) in seen]  # no paragraph leaks
    assert len(test[0]) > 30_000
    ppl = data.perplexity(tiny, tok, [test[0][:3000]], block_size=64)
    assert math.isfinite(ppl) and ppl > 50  # an untrained model is near-uniform over 400 tokens
    batch = next(iter(data.lm_data(tok, train, block_size=64, batch_size=2)))
    assert batch["input_ids"].shape == (2, 64) and torch.equal(batch["input_ids"], batch["labels"])


def test_digits_split():
    Xtr, ytr, Xte, yte = data.digits(n_test=360, seed=0)
    assert Xtr.shape == (1437, 1, 8, 8) and Xte.shape == (360, 1, 8, 8)
    assert 0 <= Xtr.min() and Xtr.max() <= 1 and set(yte.tolist()) == set(range(10))
    with pytest.raises(ValueError, match="leaves no training"):
        data.digits(n_test=1797)
    x, y = next(iter(data.tensor_batches(Xtr, ytr, batch_size=16)))
    assert x.shape == (16, 1, 8, 8) and y.shape == (16,)
