"""The chat task (peftcourse.chat_task) and the SmolLM2 evidence runner, with SmolLM2's real tokenizer and chat
template and a tiny random Llama of the same vocabulary (fast); skipped where the converted model is not there."""
import copy

import pytest
import torch
import torch.nn.functional as F
from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

from peftcourse import chat_task, data, smollm2
from peftcourse.experiments import smollm2 as runner
from peftcourse.experiments.registry import Spec
from peftcourse.qlora import QLoRALinear, QuantLinear


@pytest.fixture(scope="module")
def tok():
    try:
        smollm2.verify()
    except smollm2.SmolLM2Error as err:
        pytest.skip(f"SmolLM2 is not converted here ({err})")
    return AutoTokenizer.from_pretrained(smollm2.cache_dir(), local_files_only=True)


@pytest.fixture(scope="module")
def tiny(tok):
    torch.manual_seed(0)
    cfg = LlamaConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                      intermediate_size=64, vocab_size=len(tok), max_position_embeddings=256,
                      pad_token_id=tok.pad_token_id)
    return LlamaForCausalLM(cfg).eval()


def test_the_prompt_is_the_chat_template_ending_where_the_answer_starts(tok):
    p = chat_task.prompt(tok, "Skip a test unless the condition is true.")
    assert p.startswith("<|im_start|>system\n" + chat_task.SYSTEM)
    assert "Skip a test unless the condition is true." in p and ", ".join(data.TOPIC_LABELS) in p
    assert p.endswith("<|im_start|>assistant\n")


def test_each_answer_is_decided_by_its_own_first_token(tok):
    ids = chat_task.answer_tokens(tok)
    assert len(set(ids.tolist())) == len(data.TOPIC_LABELS)
    for label, i in zip(data.TOPIC_LABELS, ids.tolist()):
        assert label.startswith(tok.decode([i]))   # "tk" for tkinter: a prefix, never another package's


def test_left_padding_gives_every_prompt_the_logits_it_has_alone(tok, tiny):
    texts = ["Skip a test unless the condition is true.", "Parse XML document from sequence of string fragments, "
             "which may be long and is cut to the course's limit of sentence tokens before it is asked about."]
    enc = chat_task.encode(tok, texts)
    assert (enc["attention_mask"][:, -1] == 1).all() and (enc["attention_mask"][0, 0] == 0)
    head = chat_task.AnswerLogits(tiny)
    with torch.no_grad():
        batched = head(enc)
        for i, text in enumerate(texts):
            alone = chat_task.encode(tok, [text])
            assert alone["attention_mask"].all() and alone["position_ids"][0, 0] == 0
            torch.testing.assert_close(batched[i], head(alone)[0], atol=1e-5, rtol=1e-4)


def test_a_long_sentence_is_cut_but_the_question_survives(tok):
    long = " ".join(["word"] * 500)
    ids = chat_task.encode(tok, [long], max_sentence_tokens=32)["input_ids"][0]
    assert len(ids) < 120 and tok.decode(ids).endswith("<|im_start|>assistant\n")


def test_accuracy_counts_the_most_likely_of_the_eight_answers(tok, tiny, monkeypatch):
    examples = [{"text": "Wake up the first waiter that isn't done.", "label": 0},
                {"text": "Represents the number as an instance of Decimal.", "label": 1},
                {"text": "Return the length of s when it is encoded with base64.", "label": 2}]
    choices = chat_task.answer_tokens(tok)
    # a model that always prefers answer 1 (decimal) among the eight: right on exactly one of three

    def always_decimal(enc):
        logits = torch.zeros(enc["input_ids"].shape[0], len(tok))
        logits[:, choices[1]] = 1.0
        return logits
    monkeypatch.setattr(chat_task.AnswerLogits, "forward", lambda self, enc: always_decimal(enc))
    assert chat_task.accuracy(tiny, tok, examples)["accuracy"] == pytest.approx(1 / 3)


def test_batches_pair_each_prompt_with_its_answer_token(tok):
    examples = [{"text": "Set the event loop for the current context to loop.", "label": 0},
                {"text": "Skip a test unless the condition is true.", "label": 6}]
    enc, target = next(iter(chat_task.batches(tok, examples, batch_size=2, shuffle=False)))
    assert target.tolist() == chat_task.answer_tokens(tok)[[0, 6]].tolist()
    assert enc["input_ids"].shape[0] == 2
    with pytest.raises(ValueError, match="batch_size"):
        chat_task.batches(tok, examples, batch_size=0)


def test_the_one_loop_teaches_the_tiny_model_the_answers(tok, tiny):
    from peftcourse.train import train
    model = copy.deepcopy(tiny).requires_grad_(True)   # the tiny model's adapters could not move a 49k-word head
    examples = [{"text": t, "label": l} for t, l in [("Skip a test unless the condition is true.", 6),
                                                     ("Parse XML document from string fragments.", 7)]]
    hist = train(chat_task.AnswerLogits(model), chat_task.batches(tok, examples, batch_size=2), steps=30, lr=1e-2,
                 loss_fn=F.cross_entropy, progress=False)
    assert hist.losses[-1] < 0.5 * hist.losses[0]
    assert chat_task.accuracy(model, tok, examples)["accuracy"] == 1.0


def test_finetune_checkpoints_and_gives_the_gradients_of_a_plain_run(tok, tiny):
    """chat_task.finetune is the one loop with gradient checkpointing on for the run: the same losses as train()
    without it, and the model's cache setting and checkpointing restored afterwards."""
    from peftcourse.train import train
    examples = [{"text": t, "label": l} for t, l in [("Skip a test unless the condition is true.", 6),
                                                     ("Parse XML document from string fragments.", 7)]]
    plain = train(chat_task.AnswerLogits(copy.deepcopy(tiny).requires_grad_(True)),
                  chat_task.batches(tok, examples, batch_size=2), steps=4, lr=1e-2, loss_fn=F.cross_entropy,
                  progress=False)
    model = copy.deepcopy(tiny).requires_grad_(True)
    seen = []
    original = model.gradient_checkpointing_enable
    model.gradient_checkpointing_enable = lambda **kw: (seen.append(kw), original(**kw))
    hist = chat_task.finetune(model, tok, examples, steps=4, lr=1e-2, batch_size=2, desc="test")
    assert seen and hist.losses == pytest.approx(plain.losses, rel=1e-5)
    assert model.config.use_cache == tiny.config.use_cache and not model.is_gradient_checkpointing


def test_answer_table_prints_each_models_answer_and_refuses_a_missing_one(capsys):
    examples = [{"text": "Parse XML document from string fragments.", "label": 7}]
    chat_task.answer_table(examples, {"base": ["Parse"], "tuned": ["xml"]})
    out = capsys.readouterr().out
    assert "right answer: xml" in out and "base: 'Parse'" in out and "tuned: 'xml'" in out
    with pytest.raises(ValueError, match="'tuned' has 0 answers for 1 examples"):
        chat_task.answer_table(examples, {"base": ["Parse"], "tuned": []})
    assert capsys.readouterr().out == ""   # refused before printing anything


@pytest.mark.parametrize("method", ["full", "lora", "dora", "qlora"])
def test_the_runner_builds_each_method_on_llama(tiny, method):
    model = runner.build(copy.deepcopy(tiny), Spec(method, runner.TARGETS, r=2, alpha=4) if method != "full"
                         else Spec("full"))
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    if method == "full":
        assert trainable == {n for n, _ in model.named_parameters()}
        return
    assert trainable and all(".q_proj." in n or ".v_proj." in n for n in trainable)
    if method == "qlora":   # QLoRA's base: every linear layer of the blocks in NF4, LoRA on q and v
        layer = model.model.layers[0]
        assert isinstance(layer.self_attn.q_proj, QLoRALinear) and isinstance(layer.mlp.down_proj, QuantLinear)
        assert isinstance(layer.self_attn.k_proj, QuantLinear)


def test_the_qlora_base_reads_each_weight_once_from_where_it_is_told(tiny):
    """read_weight (e.g. the saved file, as notebook 07 uses it): every projection is quantized from what it
    returns, read once, never from the model's own copy."""
    names = [n for n, m in tiny.named_modules() if n.rsplit(".", 1)[-1] in runner.BLOCK_LINEARS]
    torch.manual_seed(1)
    elsewhere = {n: torch.randn_like(tiny.get_submodule(n).weight) for n in names}   # not the model's weights
    read = []
    model = runner.build(copy.deepcopy(tiny), Spec("qlora", runner.TARGETS, r=2, alpha=4),
                         read_weight=lambda name: read.append(name) or elsewhere[name])
    assert sorted(read) == sorted(names)
    for name in names:
        layer = model.get_submodule(name)
        quantized = layer.base if isinstance(layer, QLoRALinear) else layer
        assert torch.equal(quantized.weight, QuantLinear(elsewhere[name]).weight), name


def test_the_runner_refuses_an_unknown_method(tiny):
    with pytest.raises(ValueError, match="unknown method 'mora'"):
        runner.build(copy.deepcopy(tiny), Spec("mora", runner.TARGETS, r=2, alpha=4))


def test_zero_shot_is_one_run_for_every_seed():
    cfg = runner.SIZES["full"]
    assert runner.run_key(runner.ZERO_SHOT, None, 3, cfg) == runner.run_key(runner.ZERO_SHOT, None, 0, cfg)
    lora = Spec("lora", runner.TARGETS, r=8, alpha=16)
    assert runner.run_key(lora, 1e-3, 3, cfg) != runner.run_key(lora, 1e-3, 0, cfg)


def test_a_smoke_run_of_every_smollm2_design_on_the_tiny_model(tok, tiny, monkeypatch):
    from peftcourse import experiments as E
    monkeypatch.setattr(runner, "fresh_smollm2", lambda: (copy.deepcopy(tiny), tok))
    monkeypatch.setattr(E.minilm, "RUN_CACHE", {})
    for name in ["lora_vs_full_ft_smollm2", "lora_rank_smollm2", "qlora_vs_lora_smollm2", "dora_vs_lora_smollm2",
                 "lora_vs_full_ft_smollm2_hotter"]:
        result = E.run_experiment(name, [0], "smoke")
        assert "zero-shot" in result["results"] and result["size"] == "smoke"
        assert all(0.0 <= v[0] <= 1.0 for v in result["results"].values())
        assert E.get(name).follow_up_of and E.get(name).registered_commit


def test_the_one_split_is_the_registered_designs_and_refuses_sizes_it_cannot_give():
    train_all, test_all = data.doc_topics(n_test=400, seed=0)
    train, val, test = chat_task.split(n_test=80)
    assert train == train_all[:1100] and val == [] and test == test_all[:80]
    assert runner.splits(runner.SIZES["full"]) == (train_all[:1100], train_all[1100:1200], test_all[:200])
    assert not {ex["text"] for ex in train + val} & {ex["text"] for ex in test_all}
    for kwargs, problem in (({"n_test": 401}, "n_test"), ({"n_val": 101}, "n_val"), ({"n_train": 0}, "n_train"),
                            ({"n_test": 8.0}, "n_test")):
        with pytest.raises(ValueError, match=problem):
            chat_task.split(**kwargs)


def test_a_design_sweeps_its_own_rate_grid_on_seed_0(monkeypatch):
    from peftcourse import experiments as E
    tried = []
    def fake_finetune(spec, lr, seed, cfg):   # validation accuracy grows with the rate: the top one is chosen
        tried.append((runner.FAMILY[Spec.of(spec).method], lr, seed))
        return {"val": lr, "wall_s": 1.0}
    monkeypatch.setattr(runner, "finetune", fake_finetune)
    config = copy.deepcopy(E.get("lora_vs_full_ft_smollm2_hotter").sizes["full"])
    config, seconds = runner.smollm2_prepare(config, "full", "lora_vs_full_ft_smollm2_hotter")
    assert sorted(tried) == [("LoRA", 3e-3, 0), ("LoRA", 1e-2, 0), ("full FT", 1e-4, 0), ("full FT", 3e-4, 0)]
    assert config["lr"] == {"LoRA": 1e-2, "full FT": 3e-4} and len(seconds) == 4
    assert config["lr_sweep"]["LoRA"]["val_accuracy"] == {"0.003": 3e-3, "0.01": 1e-2}
    tried.clear()   # a tie keeps the smaller rate, in whatever order the grid lists them
    config = copy.deepcopy(E.get("lora_vs_full_ft_smollm2_hotter").sizes["full"])
    config["lr_grid"] = {"LoRA": [1e-2, 3e-3], "full FT": [3e-4, 1e-4]}
    monkeypatch.setattr(runner, "finetune", lambda spec, lr, seed, cfg: {"val": 0.7, "wall_s": 1.0})
    assert runner.smollm2_prepare(config, "full", "x")[0]["lr"] == {"LoRA": 3e-3, "full FT": 1e-4}
    monkeypatch.setattr(runner, "finetune", fake_finetune)
    tried.clear()   # a design without a grid of its own sweeps the shared one
    runner.smollm2_prepare(copy.deepcopy(E.get("lora_vs_full_ft_smollm2").sizes["full"]), "full", "x")
    assert sorted(lr for _, lr, _ in tried) == sorted(runner.LR_SWEEP["LoRA"] + runner.LR_SWEEP["full FT"])
