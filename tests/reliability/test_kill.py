"""Kill anywhere: SIGKILL a training run (warm start + RL) at a fault point or a random
moment, then ``--resume auto`` must start from the newest complete checkpoint and end
exactly like an uninterrupted run (metrics to 1e-6, final weights).

The default suite runs a handful of trials aimed at the riskiest places (inside
``save_checkpoint``, between a step and its checkpoint, in the warm start); the ``slow``
test runs seeded random trials until 50 runs were killed and prints its tally
(docs/reliability.md)."""
import os
import random

import pytest

from .runs import KILL_POINTS, newest_good_checkpoint, resumed_from, run, same_run


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted run, and how long its training took (set-up excluded)."""
    out = tmp_path_factory.mktemp("reference")
    code, text, seconds = run(out)
    assert code == 0, text[-3000:]
    return out, seconds


def kill_and_resume(reference, out, *, fault=None, kill_after=None) -> dict:
    """One trial; returns what happened (asserting everything the issue asks for)."""
    from gro_fast.train.checkpoint import checkpoint_root, list_checkpoints, verify_checkpoint
    code, text, _ = run(out, fault=fault, kill_after=kill_after)
    killed = code == -9
    assert killed or code == 0, text[-3000:]
    root = checkpoint_root(str(out))
    for _, _, path in list_checkpoints(root):   # nothing partial under a checkpoint name
        verify_checkpoint(path)
    expected = newest_good_checkpoint(out)
    code, text, _ = run(out, resume=True)
    assert code == 0, text[-3000:]
    assert resumed_from(text) == expected, text[-3000:]
    problems = same_run(reference, out)
    assert not problems, problems
    assert not [p for p in os.listdir(root) if p.startswith(".")], os.listdir(root)
    return {"killed": killed, "resumed_from": os.path.basename(expected or "fresh")}


@pytest.mark.parametrize("fault", [
    "checkpoint.write:kill:7",        # inside trainer_state.pt of RL step 2's checkpoint
    "checkpoint.renamed:kill:4",      # RL step 2 renamed into place, older ones not pruned
    "sft.step:kill:2",                # warm-start step 2 done, its checkpoint not written
])
def test_kill_at_a_fault_point_then_resume_exactly(reference, tmp_path, fault):
    outcome = kill_and_resume(reference[0], tmp_path / "run", fault=fault)
    assert outcome["killed"]


def test_kill_at_a_random_moment_then_resume_exactly(reference, tmp_path):
    delay = random.Random(0).uniform(0.2, 0.8) * reference[1]
    kill_and_resume(reference[0], tmp_path / "run", kill_after=delay)


@pytest.mark.slow
def test_fifty_random_kills_resume_exactly(reference, tmp_path):
    """Trials until 50 runs were killed (2 of 3 at a random fault point, 1 of 3 at a random
    moment; a run may finish before its moment comes, and still has to resume exactly)."""
    rng = random.Random(2026)
    tally = {"tried": 0, "killed": 0, "resumed_exactly": 0, "in_checkpoint": 0}
    points = sorted(KILL_POINTS)
    trial = 0
    while tally["killed"] < 50 and trial < 100:
        if trial % 3:
            point = rng.choice(points)
            fault, delay = f"{point}:kill:{rng.randint(1, KILL_POINTS[point])}", None
        else:
            fault, delay = None, rng.uniform(0.0, 0.8) * reference[1]
        outcome = kill_and_resume(reference[0], tmp_path / f"trial-{trial}", fault=fault,
                                  kill_after=delay)
        tally["tried"] += 1
        tally["killed"] += outcome["killed"]
        tally["in_checkpoint"] += bool(outcome["killed"] and fault
                                       and fault.startswith("checkpoint."))
        tally["resumed_exactly"] += 1
        kind = outcome["resumed_from"].split("-")[0]
        tally[f"resumed_from_{kind}"] = tally.get(f"resumed_from_{kind}", 0) + 1
        print(f"trial {trial}: {fault or f'SIGKILL after {delay:.2f}s'} -> "
              f"{'killed' if outcome['killed'] else 'finished first'}, resumed from "
              f"{outcome['resumed_from']}", flush=True)
        trial += 1
    print(f"kill trials: {tally}")
    assert tally["killed"] >= 50
