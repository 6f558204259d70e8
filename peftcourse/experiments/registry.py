"""What an experiment is: the registry (Experiment, experiment(), get()), the three sizes, and Spec, the one
description of a setting (which method, on which weights, at which rank) that both models' runners build from.

A registered config is plain JSON data, the same as a stored result's config: a Spec is written as its dict
when the experiment is registered, and a runner reads it back with Spec.of(). So a cached config read from
data/results/*.json and a fresh one are built the same way, and the run cache's keys stay the stored dicts.
"""
import dataclasses
import json

from . import preregistration

SIZES = ("smoke", "class", "full")
REGISTRY = {}


class Experiment:
    """One registered experiment: what it asks, the paper's figure, its sizes and the comparisons it judges."""

    def __init__(self, fn, name, claim, question, paper, metric, higher_is_better, sizes, compare, prepare):
        self.fn, self.name, self.claim, self.question, self.paper = fn, name, claim, question, paper
        self.metric, self.higher_is_better, self.sizes, self.compare, self.prepare = (
            metric, higher_is_better, sizes, compare, prepare)

    # the pre-registration (preregistration.py): a design is judged on its confirmation seeds only
    @property
    def is_control(self):
        """A control asks why a design came out as it did (its question starts "Control")."""
        return self.question.startswith("Control")

    @property
    def selection_seeds(self):
        return preregistration.selection_seeds(self.name)

    @property
    def confirmation_seeds(self):
        return preregistration.confirmation_seeds(self.name)

    @property
    def registered_commit(self):
        return preregistration.registered_commit(self.name)

    @property
    def follow_up_of(self):
        return preregistration.FOLLOW_UP_OF.get(self.name)

    def config(self, size):
        if size not in SIZES:
            raise ValueError(f"size must be one of {SIZES}, got {size!r}")
        return json.loads(json.dumps(self.sizes[size]))   # a deep copy: a run never changes the registry


def experiment(name, *, claim, question, paper, metric, higher_is_better, sizes, compare, prepare=None):
    """Register fn(config, seed) -> {"metric": {setting: value}, "curves": {setting: {...}}, "facts": {...},
    "examples": {...}, "runs": {run: seconds}} (all but "metric" optional; store.run_experiment says what each is).

    sizes: {"smoke": config, "class": config, "full": config}, Specs allowed anywhere in them; compare: the
    paper's comparisons (better(), parity(), fraction()); prepare(config, size, name) -> (config, runs) runs
    once before the seeds (e.g. the learning-rate sweep): its config is stored as the result's, its runs
    ({run: seconds}) count in the result's wall time.
    """
    if not (isinstance(claim, str) and claim[:1] == "C" and claim[1:].isdigit() and 1 <= int(claim[1:]) <= 11):
        raise ValueError(f"claim must be 'C1' ... 'C11' (docs/evidence.md lists them), got {claim!r}")
    if set(sizes) != set(SIZES):
        raise ValueError(f"sizes must give a config for each of {SIZES}, got {sorted(sizes)}")
    if not compare:
        raise ValueError(f"experiment {name!r} needs at least one comparison to judge the paper's claim by")
    sizes = json.loads(json.dumps(sizes, default=Spec.to_dict))   # plain JSON, as a stored config is

    def register(fn):
        if name in REGISTRY:
            raise ValueError(f"an experiment named {name!r} is already registered")
        REGISTRY[name] = Experiment(fn, name, claim, question, paper, metric, higher_is_better, sizes, compare, prepare)
        return fn
    return register


def get(name):
    if name not in REGISTRY:
        raise KeyError(f"no experiment named {name!r}; registered: {sorted(REGISTRY)}")
    return REGISTRY[name]


@dataclasses.dataclass(frozen=True)
class Spec:
    """One setting: a method with its arguments. targets: the adapted weights (MiniLM's module names, or the
    lecture's "q", "k", "v", "o" for TinyGPT's "lora_attention"; None: the runner's default); extra: the
    method's other arguments (bottleneck, k, variant, mora_type, pooler), as a dict or (key, value) pairs."""
    method: str
    targets: tuple = None
    r: int = None
    alpha: float = None
    extra: tuple = ()

    # inject_gpt2_attention calls its targets `weights`, and the stored configs spell them so
    TARGETS_KEY = {"lora_attention": "weights"}

    def __post_init__(self):
        if self.targets is not None:
            object.__setattr__(self, "targets", tuple(self.targets))
        object.__setattr__(self, "extra", tuple(dict(self.extra).items()))

    def get(self, key, default=None):
        return dict(self.extra).get(key, default)

    def with_extra(self, **extra):
        """The same setting with more arguments (e.g. pooler=True)."""
        return dataclasses.replace(self, extra={**dict(self.extra), **extra})

    def arguments(self):
        """Everything but the method, by its stored names: the keyword arguments of the injection."""
        return {k: v for k, v in self.to_dict().items() if k != "method"}

    def to_dict(self):
        """The dict a result stores in config["settings"]: method, targets, r, alpha, then the rest, in order."""
        out = {"method": self.method}
        if self.targets is not None:
            out[self.TARGETS_KEY.get(self.method, "targets")] = list(self.targets)
        out.update({k: v for k, v in (("r", self.r), ("alpha", self.alpha)) if v is not None})
        out.update(self.extra)
        return out

    @classmethod
    def from_dict(cls, d):
        rest = dict(d)
        method = rest.pop("method")
        return cls(method, rest.pop(cls.TARGETS_KEY.get(method, "targets"), None), rest.pop("r", None),
                   rest.pop("alpha", None), rest)

    @classmethod
    def of(cls, spec):
        """A Spec from a Spec or from its dict (a config's settings, e.g. a cached result's)."""
        return spec if isinstance(spec, cls) else cls.from_dict(spec)


FULL = Spec("full")
TOP_LAYER = Spec("top", extra={"k": 1})   # the last block and the head (MiniLM: pooler + classifier)


def adapter(bottleneck):
    return Spec("adapter", extra={"bottleneck": bottleneck})


def pooled(spec):
    """The same method with BERT's pooler trained too, as the papers' RoBERTa head trains its dense layer."""
    return spec.with_extra(pooler=True)
