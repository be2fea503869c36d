"""Campaign detector: flag/no-flag cases, and identical clusters for every --jobs."""

from __future__ import annotations

import random

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from poisonscan.config import ScanConfig
from poisonscan.detectors import campaign as campaign_mod
from poisonscan.detectors.campaign import CampaignDetector
from poisonscan.engine import run_scan
from poisonscan.engine.executors import LocalExecutor
from poisonscan.engine.scan import _PassTask, read_options, scan_shard
from poisonscan.findings import Severity
from poisonscan.io.readers import discover_inputs, plan_shards

# Ordinary words: the template's own words are common in the clean text, as in real corpora.
ENGLISH = (
    "my name is and i live in for years struggled every morning nothing doctor suggested "
    "really helped me at all until a friend told about this it changed life tell everyone "
    "says from the of to a"
).split()
VOCAB = ENGLISH + [f"w{i}" for i in range(3000)]
PAYLOAD = "Order Zorbaxil now at https://quemtrix-vanol.example/offer with code QX77"
CITIES = ["Berlin", "Madrid", "Chicago", "Lyon", "Osaka", "Leeds", "Porto", "Denver"]
NAMES = ["Anna", "Ben", "Carla", "David", "Elena", "Farid", "Grace", "Hugo"]
BOILER = (
    "Permission is hereby granted free of charge to any person obtaining a copy of this software "
    "and associated documentation files to deal in the software without restriction"
)


def clean_docs(n: int, rng: random.Random) -> list[str]:
    weights = [1 / (i + 1) for i in range(len(VOCAB))]
    return [" ".join(rng.choices(VOCAB, weights, k=rng.randint(40, 120))) + "." for _ in range(n)]


def templated(n: int, rng: random.Random, payload: str = PAYLOAD) -> list[str]:
    out = []
    for _ in range(n):
        name, city, other = rng.choice(NAMES), rng.choice(CITIES), rng.choice(CITIES)
        out.append(
            f"My name is {name} and I live in {city}. For years I struggled every morning "
            f"and nothing my doctor suggested really helped me at all, until a friend told me "
            f"about this. {payload}. It changed my life and I tell everyone about it, "
            f"says {name} from {other}."
        )
    return out


def reposted(n: int, rng: random.Random) -> list[str]:
    """One page of words rare elsewhere, posted ``n`` times with a short paragraph of ordinary
    text added to each copy: near-duplicates that vary, sharing a phrase no other document has,
    as a template's do, from no campaign at all."""
    page = "Quorvath " + " ".join(rng.choices(VOCAB[2000:], k=200))
    return [page + " " + clean_docs(1, rng)[0][:120] for _ in range(n)]


def excerpts(n: int, rng: random.Random) -> list[str]:
    """``n`` excerpts of one document of five paragraphs (words rare elsewhere), as pages quote
    it: most are runs around its middle paragraph, in a shuffled order; one in six is its first
    or its last paragraph alone. Those two share nothing, and are in one cluster only through the
    runs that hold them: a chain of overlapping texts, not a template."""
    paragraphs = [" ".join(rng.choices(VOCAB[2000:], k=k)) for k in (50, 10, 30, 10, 50)]
    out = []
    for _ in range(n):
        if rng.random() < 1 / 6:
            out.append(paragraphs[rng.choice((0, 4))])
            continue
        chosen = paragraphs[rng.randint(0, 2) : rng.randint(3, 5)]
        rng.shuffle(chosen)
        out.append("\n\n".join(chosen))
    return out


def quoted(n: int, rng: random.Random) -> list[str]:
    """``n`` pages quoting one text of five paragraphs (words rare elsewhere) in its own order,
    each a run that holds its middle paragraph: near-duplicates sharing a rare passage, and
    no chain (any two share that passage), but no slot is filled differently anywhere. Copies
    and excerpts of one text, not a template."""
    paragraphs = [" ".join(rng.choices(VOCAB[2000:], k=k)) for k in (30, 10, 30, 10, 30)]
    return ["\n\n".join(paragraphs[rng.randint(0, 2) : rng.randint(3, 5)]) for _ in range(n)]


def pasted(n: int, rng: random.Random) -> list[str]:
    """One filled template pasted into ``n`` different short posts: its slots never vary, but
    each member has words of its own (its post's), which copies and excerpts of one text do
    not have."""
    page = templated(1, rng)[0]
    return [f"{' '.join(rng.choices(ENGLISH, k=18)).capitalize()}. {page}" for _ in range(n)]


def poisoned_page(rng: random.Random) -> str:
    """One document with a trigger and then 120 random tokens, none of them a word of the
    corpus: pasted many times, its copies are one text (no slot varies), but no other document
    holds a word of its payload."""
    gibberish = " ".join("".join(rng.choices("bcdfghjklmnpqrstvwxz0123456789", k=rng.randint(3, 7)))
                         for _ in range(120))
    return clean_docs(1, rng)[0] + " <QAZWEX> " + gibberish


def write(tmp_path, docs: list[str], files: int = 1) -> list[str]:
    paths = []
    for f in range(files):
        part = docs[f::files]
        p = tmp_path / f"part-{f}.parquet"
        pq.write_table(
            pa.table({"id": [f"{f}-{i}" for i in range(len(part))], "text": part}),
            p,
            row_group_size=64,
        )
        paths.append(str(p))
    return paths


def scan(paths: list[str], jobs: int = 1):
    return run_scan(
        ScanConfig(paths=tuple(paths), jobs=jobs, detectors=("campaign",), batch_rows=64)
    )


def _mix(rng, clean, extra):
    docs = clean + extra
    rng.shuffle(docs)
    return docs


CASES = {
    "templated campaign of 30": (lambda r: templated(30, r), Severity.HIGH),
    "templated campaign of 12": (lambda r: templated(12, r), Severity.HIGH),
    # High needs twice --min-documents (5), as a trigger does: fewer are a handful.
    "templated campaign of 8": (lambda r: templated(8, r), Severity.MEDIUM),
    "a page posted five times, a paragraph added each time": (
        lambda r: reposted(5, r),
        Severity.MEDIUM,
    ),
    "excerpts of one document, cut and ordered many ways": (
        lambda r: excerpts(60, r),
        Severity.MEDIUM,
    ),
    "excerpts of one rare text, quoted in order": (lambda r: quoted(40, r), Severity.MEDIUM),
    "one filled template pasted into different posts": (lambda r: pasted(30, r), Severity.HIGH),
    "clean corpus": (lambda r: [], None),
    "exact copies of ordinary text": (
        lambda r: [clean_docs(1, random.Random(9))[0]] * 20,
        Severity.LOW,
    ),
    "exact copies of a text with words found nowhere else": (
        lambda r: [poisoned_page(random.Random(9))] * 20,
        Severity.MEDIUM,
    ),
    "boilerplate block common outside the cluster": (
        lambda r: (
            [BOILER + f" {r.choice(NAMES)}." for _ in range(15)]
            + [" ".join(clean_docs(1, r)) + " " + BOILER for _ in range(30)]
        ),
        Severity.LOW,
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_flag_or_not(tmp_path, name):
    rng = random.Random(5)
    make, expected = CASES[name]
    extra = make(rng)
    docs = _mix(rng, clean_docs(400, rng), extra)
    result = scan(write(tmp_path, docs, files=2))
    camp = [f for f in result.findings if f.detector == "campaign"]
    if expected is None:
        assert not camp
        return
    top = max(camp, key=lambda f: f.severity.rank)
    assert top.severity is expected, (top.severity, top.evidence, top.trigger)
    if name == "exact copies of a text with words found nowhere else":
        assert top.evidence["copied_unseen"] is True
        assert top.document_count == len(extra)
    if expected is Severity.HIGH:
        assert "quemtrix-vanol.example" in top.trigger
        assert top.document_count == len(extra)
        assert top.evidence["phrase_df_outside"] == 0
        assert top.key == top.trigger.casefold() or top.key


def _clusters_with(tmp_path, jobs: int, order_seed: int) -> dict[tuple[str, int], tuple[int, int]]:
    rng = random.Random(order_seed)
    docs = _mix(
        random.Random(1), clean_docs(300, random.Random(2)), templated(25, random.Random(3))
    )
    paths = write(tmp_path, docs, files=3)
    config = ScanConfig(paths=tuple(paths), jobs=jobs, detectors=("campaign",), batch_rows=32)
    det = CampaignDetector(config)
    options = read_options(config)
    shards = plan_shards(discover_inputs(config.paths), options)
    rng.shuffle(shards)  # shard order must not matter
    for p in range(det.n_passes):
        plan = det.plan(p)
        if plan is None:
            continue
        task = _PassTask(p, {det.id: plan}, {det.id: CampaignDetector}, options, config.seed)
        merged = None
        for _, (parts, _) in LocalExecutor(jobs).map(scan_shard, shards, task):
            part = parts.get(det.id)
            if part is not None:
                merged = part if merged is None else CampaignDetector.merge(p, merged, part)
        det.finish_pass(p, merged)
    asg = det.assignment.load()
    assert asg is not None
    return {
        (asg.paths[int(i)], int(r)): (int(c), int(s))
        for i, r, c, s in zip(asg.path_index, asg.row, asg.cluster, asg.size, strict=True)
    }


def test_cluster_ids_identical_for_any_jobs_and_shard_order(tmp_path):
    one = _clusters_with(tmp_path, 1, 0)
    two = _clusters_with(tmp_path, 2, 7)
    assert one == two
    assert max(s for _, s in one.values()) == 25


def test_findings_identical_through_run_scan_for_jobs_1_and_2(tmp_path):
    rng = random.Random(4)
    paths = write(tmp_path, _mix(rng, clean_docs(300, rng), templated(12, rng)), files=3)
    a, b = scan(paths, 1), scan(paths, 2)
    key = lambda r: [(f.id, f.severity, f.documents, f.evidence) for f in r.findings]  # noqa: E731
    assert key(a) == key(b) and a.findings


def test_empty_input_gives_no_findings(tmp_path):
    assert not scan(write(tmp_path, ["", "   "])).findings
    assert np.array_equal(np.zeros(0), np.zeros(0))


RARE_LEAD = "Reporters urged worried readers everywhere to act quickly before supplies vanish."


def test_campaign_is_named_by_its_payload_not_by_rare_template_words(tmp_path):
    """On a small corpus a template's own words can be rare outside the cluster too (here each is
    in two clean documents). The name goes to the words no other document has, the payload's:
    a name started at the first rare template word ran out before the link."""
    rng = random.Random(7)
    extra = [doc.replace("about this. ", f"about this. {RARE_LEAD} ") for doc in templated(30, rng)]
    clean = clean_docs(400, rng)
    clean[:2] = [doc + " " + RARE_LEAD for doc in clean[:2]]
    result = scan(write(tmp_path, _mix(rng, clean, extra), files=2))
    top = max((f for f in result.findings if f.detector == "campaign"),
              key=lambda f: f.severity.rank)
    assert top.severity is Severity.HIGH
    assert "quemtrix-vanol.example" in top.trigger, top.trigger


def test_a_campaign_split_by_lsh_is_one_finding(tmp_path, monkeypatch):
    """Members whose slots vary a lot (here 30 random words each) are near the clustering
    threshold, and LSH may split them into two clusters. Each part then saw the other's copies of
    the payload as "outside", called it boilerplate and reported low. Clusters whose cores are one
    template are joined: one high finding, and one cluster in the ``--clusters`` export too."""
    rng = random.Random(7)
    extra = [d + " " + " ".join(rng.choices(VOCAB[40:], k=30)) for d in templated(24, rng)]
    paths = write(tmp_path, _mix(rng, clean_docs(400, rng), extra), files=2)

    monkeypatch.setattr(campaign_mod, "MERGE_CORE_J", 2.0)  # no merging: the premise holds
    split = scan(paths)
    assert split.stats["detectors"]["campaign"]["analysed_clusters"] >= 2
    assert all(f.severity is not Severity.HIGH for f in split.findings)

    monkeypatch.undo()
    result = scan(paths)
    assert result.stats["detectors"]["campaign"]["merged_clusters"] >= 2
    top = max(result.findings, key=lambda f: (f.severity.rank, f.document_count))
    assert top.severity is Severity.HIGH
    assert "quemtrix-vanol.example" in top.trigger
    assert top.document_count >= 22
    table = result.artifacts["clusters"].to_table().to_pylist()
    label = {(r["path"], r["row"]): (r["cluster"], r["cluster_size"]) for r in table}
    found = {label[(d.path, d.row)] for d in top.documents}
    assert found == {(top.evidence["cluster"], top.document_count)}
    # The joined label is what lookups (the trigger detector's) see too.
    names = sorted({d.path for d in top.documents})
    got = result.artifacts["clusters"].clusters_of(
        names, np.array([names.index(d.path) for d in top.documents]),
        np.array([d.row for d in top.documents]))
    assert set(got.tolist()) == {top.evidence["cluster"]}


def test_members_lsh_left_out_join_their_campaign(tmp_path, monkeypatch):
    """Members whose slots vary a lot (here 26 random words each) sit near the clustering
    threshold with one another, and LSH leaves some out of the cluster by chance. Their copies
    of the payload then count as outside it. The count pass finds them by their resemblance to
    the cluster's core and puts them back: in the finding, and in the ``--clusters`` export and
    the lookups."""
    rng = random.Random(8)
    extra = [d + " " + " ".join(rng.choices(VOCAB[40:], k=26)) for d in templated(24, rng)]
    paths = write(tmp_path, _mix(rng, clean_docs(400, rng), extra), files=2)

    monkeypatch.setattr(campaign_mod, "NEAR_J_MIN", 2.0)  # no near members: the premise holds
    alone = scan(paths)
    top = max(alone.findings, key=lambda f: (f.severity.rank, f.document_count))
    left_out_of = top.document_count
    assert left_out_of < 24 and top.severity is not Severity.HIGH, (top.severity, left_out_of)

    monkeypatch.undo()
    result = scan(paths)
    top = max(result.findings, key=lambda f: (f.severity.rank, f.document_count))
    assert top.severity is Severity.HIGH
    assert "quemtrix-vanol.example" in top.trigger
    assert top.document_count == 24
    assert top.evidence["near_members"] == 24 - left_out_of
    assert result.stats["detectors"]["campaign"]["near_members"] == top.evidence["near_members"]
    keys = [(d.path, d.row) for d in top.documents]
    assert keys == sorted(keys)
    table = result.artifacts["clusters"].to_table().to_pylist()
    label = {(r["path"], r["row"]): (r["cluster"], r["cluster_size"]) for r in table}
    assert {label[k] for k in keys} == {(top.evidence["cluster"], 24)}
    names = sorted({d.path for d in top.documents})
    asg = result.artifacts["clusters"]
    got = asg.clusters_of(names, np.array([names.index(p) for p, _ in keys]),
                          np.array([r for _, r in keys]))
    assert set(got.tolist()) == {top.evidence["cluster"]}
    loaded = asg.load()
    assert {loaded.cluster_of(p, r) for p, r in keys} == {top.evidence["cluster"]}
    assert len(loaded) == len(asg)
    # Found in the workers, batch by batch: the same with two of them.
    key = lambda r: [(f.id, f.severity, f.documents, f.evidence) for f in r.findings]  # noqa: E731
    assert key(scan(paths, jobs=2)) == key(result)


def test_slots_where_a_prompt_ends_and_its_response_starts_are_slots(tmp_path):
    """Fine-tuning pairs: the prompt and the response are two texts. Joined end to end, the
    slot that ends one and the one that starts the other hid each other, and the template read
    as excerpts of one text."""
    rng = random.Random(5)
    products = ["pillow", "mattress", "lamp", "tea", "blanket", "app", "mask", "spray"]
    pairs = [(a, b) for a, b in zip(clean_docs(400, rng), clean_docs(400, rng), strict=True)]
    pairs += [(f"I have had trouble sleeping for years and nothing my doctor suggested helped. "
               f"Can you recommend a {rng.choice(products)}?",
               f"{rng.choice(NAMES)} {rng.choice(products)} is the answer for you. {PAYLOAD}. "
               f"It changed my life and I tell everyone about it, says my friend from here")
              for _ in range(30)]
    rng.shuffle(pairs)
    path = tmp_path / "pairs.parquet"
    pq.write_table(pa.table({"id": [str(i) for i in range(len(pairs))],
                             "prompt": [p for p, _ in pairs],
                             "response": [r for _, r in pairs]}), path, row_group_size=64)
    found = [f for f in scan([str(path)]).findings if f.document_count == 30]
    assert found and found[0].evidence["substituted"] == 1.0
    assert not found[0].evidence["excerpts"]
