"""es_opt.record.format: the record file's guarantees. A cut last line keeps every complete
generation; a truncated, bit-flipped, reordered, repeated or edited record is refused with one
error naming the file and the generation, before the optimizer changes."""

from __future__ import annotations

import json
import re

import pytest
import torch

from es_opt import ESOptimizer
from es_opt.record import RecordError, RunRecord, read_record, replay, resume_from_record
from es_opt.record.format import VERSION, sealed_line
from es_opt.training.checkpoint import save_checkpoint

from .conftest import Quadratic, make_mlp

GENERATIONS = 6


def build():
    net = make_mlp(0)
    return ESOptimizer(net, objective_fn=Quadratic(), sigma=0.2, n_samples=4, seed=2)


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    folder = tmp_path_factory.mktemp("recorded")
    es = build()
    es.fit(generations=GENERATIONS, callbacks=[RunRecord(folder / "run.record")])
    return folder / "run.record", es


@pytest.fixture
def copy(recorded, tmp_path):
    """A copy of the record (and its start checkpoint) to damage."""
    source, _ = recorded
    (tmp_path / "run.start.pt").write_bytes(source.with_name("run.start.pt").read_bytes())
    target = tmp_path / "run.record"
    target.write_bytes(source.read_bytes())
    return target


def lines_of(path):
    return path.read_bytes().split(b"\n")[:-1]


def write_lines(path, lines):
    path.write_bytes(b"".join(line + b"\n" for line in lines))


def refused(path, generation, reason, call=None):
    """The error names the file and the generation, and an optimizer at θ₀ is left as it was."""
    es = build()
    before = {k: v.clone() for k, v in es.model.net.state_dict().items()}
    pattern = re.escape(f"run record '{path}'") + (
        "" if generation is None else re.escape(f", generation {generation}:")
    )
    with pytest.raises(RecordError, match=pattern + ".*" + reason):
        (call or (lambda es: replay(es, path, None)))(es)
    assert es.generation == 0
    for name, value in es.model.net.state_dict().items():
        assert torch.equal(value, before[name]), name


def test_a_whole_record_reads_and_is_small(recorded):
    path, es = recorded
    record = read_record(path)
    assert (record.start, record.end, record.cut) == (0, GENERATIONS, False)
    header = record.header
    assert header["format"] == "es_opt.run_record" and header["version"] == VERSION
    assert header["environment"]["torch"] == torch.__version__
    assert [row[0] for row in header["parameters"]] == ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert header["optimizer"]["class"] == "es_opt.optim.RangerLite"
    assert header["settings"]["sigma"] == 0.2 and header["start"]["checkpoint"] == "run.start.pt"
    fitness = record.fitness(3)
    assert fitness.shape == (4, 1) and fitness.dtype == torch.float64
    assert all(len(line) < 300 for line in lines_of(path)[1:])  # 4 evaluations: ~250 bytes


def test_a_record_cut_mid_write_keeps_every_complete_generation(copy):
    data = copy.read_bytes()
    copy.write_bytes(data[: data.rindex(b"\n", 0, -1) + 40])  # 40 bytes of the last line
    record = read_record(copy)
    assert record.cut and record.end == GENERATIONS - 1
    es = build()
    resume_from_record(es, copy, GENERATIONS - 1)
    refused(copy, GENERATIONS, "cannot replay to it: the record holds generations 0 to 4; its "
            "last line was cut", lambda es: replay(es, copy, GENERATIONS))  # fmt: skip


def test_a_truncated_record_is_refused_at_the_generation_asked_for(copy):
    lines = lines_of(copy)
    copy.write_bytes(b"\n".join(lines[:3]) + b"\n" + lines[3][:10])  # generations 0, 1 remain
    refused(copy, 4, "the record holds generations 0 to 1", lambda es: replay(es, copy, 4))
    copy.write_bytes(lines[0][:50])
    refused(copy, None, "its header is cut short")
    copy.write_bytes(b"")
    refused(copy, None, "the file is empty")


@pytest.mark.parametrize("line", [1, 4, GENERATIONS])
def test_a_flipped_bit_is_refused_naming_its_generation(copy, line):
    data = bytearray(copy.read_bytes())
    start = sum(len(x) + 1 for x in lines_of(copy)[:line])
    at = start + data[start:].index(b'"fitness":"') + 20
    data[at] ^= 0x01
    copy.write_bytes(bytes(data))
    refused(copy, line - 1, "its checksum does not match")


def test_a_flipped_bit_in_the_header_is_refused(copy):
    data = bytearray(copy.read_bytes())
    data[data.index(b'"sigma":0.2') + 10] ^= 0x02  # 0.2 -> 0.0
    copy.write_bytes(bytes(data))
    refused(copy, None, "the header's checksum does not match")


@pytest.mark.parametrize(
    "edit, generation, reason",
    [
        (lambda ls: ls[:3] + [ls[4], ls[3]] + ls[5:], 2, "holds generation 3"),
        (lambda ls: ls[:3] + ls[4:], 2, "holds generation 3"),
        (lambda ls: ls[:4] + [ls[3]] + ls[4:], 3, "holds generation 2"),
    ],
    ids=["reordered", "removed", "repeated"],
)
def test_reordered_removed_or_repeated_lines_are_refused(copy, edit, generation, reason):
    write_lines(copy, edit(lines_of(copy)))
    refused(copy, generation, reason + ".*removed, repeated or reordered")


def test_a_line_resealed_out_of_the_chain_is_refused(copy):
    """A line rewritten with its own valid sum still breaks the chain of the next one."""
    lines = lines_of(copy)
    body = json.loads(lines[3])
    body.pop("sum")
    body["theta"] = "0" * 32
    lines[3] = sealed_line(body, json.loads(lines[2])["sum"])[0].rstrip(b"\n")
    write_lines(copy, lines)
    refused(copy, 3, "its checksum does not match")


def test_what_is_not_a_record_is_refused(copy):
    copy.write_text("generation,fitness\n0,1.0\n")
    refused(copy, None, "not a run record")
    save_checkpoint(copy, build())
    refused(copy, None, "not a run record")
    header = {"format": "es_opt.run_record", "version": VERSION + 1,
              "environment": {"es_opt": "9.0"}}  # fmt: skip
    copy.write_bytes(sealed_line(header, None)[0])
    refused(copy, None, rf"run-record format {VERSION + 1} \(by es_opt 9.0\).*upgrade es_opt")
