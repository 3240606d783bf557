"""bgg_flaky's fault plan and threshold, without a service: the plan is a pure function of
the seed, and over thousands of seeds the service's policy (3 attempts, the retry budget at
its default ratio) stays within the threshold while a service without retries never does."""

from __future__ import annotations

from chaos.fakes.log import RequestRecord
from chaos.promises import FALSE_ALARM, SPEC
from chaos.scenarios.bgg_flaky import (
    FAILURE_RATE,
    IMPORTS,
    MAX_FAILED,
    PLANNED,
    fault_plan,
    plan_digest,
    plan_followed,
    threshold,
)
from system.config import Settings
from system.resilience.budget import RetryBudget

SEEDS = range(2000)


def test_the_same_seed_plans_the_same_faults() -> None:
    assert fault_plan(6331262425) == fault_plan(6331262425)
    assert plan_digest(fault_plan(6331262425)) == "f962173f5b541dbf"
    assert fault_plan(1) != fault_plan(2)
    # An import's faults do not depend on how many imports are planned after it.
    assert fault_plan(5, 40) == fault_plan(5)[:40]


def test_the_plan_fails_a_fifth_of_the_attempts() -> None:
    attempts = failures = 0
    for seed in range(400):
        for failed in fault_plan(seed):
            failures += failed
            attempts += failed + 1
    share = failures / attempts
    assert abs(share - FAILURE_RATE) < 0.005, share


def test_the_threshold_is_derived_with_its_false_alarm_probability() -> None:
    derived = threshold()
    assert derived.max_failed == MAX_FAILED
    assert derived.false_alarm < FALSE_ALARM
    assert derived.miss_without_retries < FALSE_ALARM
    assert SPEC.flaky_import_success == 1 - MAX_FAILED / IMPORTS


def test_the_spec_budget_is_the_service_default() -> None:
    ratio = Settings.model_fields["bgg_retry_budget_ratio"].default
    assert ratio == SPEC.retry_budget_ratio
    assert RetryBudget(ratio).capacity == SPEC.retry_budget_capacity


def _failed_imports(plan: list[int], attempts: int) -> int:
    """Imports that fail under the service's policy, the retry budget at its default ratio
    and no refill by time (the worst case); the breaker is left out (it only excludes)."""
    budget = RetryBudget(SPEC.retry_budget_ratio, capacity=SPEC.retry_budget_capacity,
                         clock=lambda: 0.0)  # fmt: skip
    failed = 0
    for failures in plan[:IMPORTS]:
        budget.deposit()
        attempt = 1
        while attempt <= failures and attempt < attempts and budget.try_spend():
            attempt += 1
        failed += attempt <= failures
    return failed


def test_the_policy_passes_every_seed_and_no_retries_fails_every_seed() -> None:
    for seed in SEEDS:
        plan = fault_plan(seed)
        assert _failed_imports(plan, SPEC.retry_attempts) <= MAX_FAILED, seed
        assert _failed_imports(plan, 1) > MAX_FAILED, seed


def _record(seq: int, bgg_id: int, status: int) -> RequestRecord:
    return RequestRecord(seq, "", 0.0, "GET", "/thing", "/thing", f"id={bgg_id}&stats=1",
                         status=status)  # fmt: skip


def test_the_log_is_checked_against_the_plan() -> None:
    plan = {11: 2, 12: 0, 13: 3}
    log = [(11, 503), (11, 503), (11, 200), (12, 200), (13, 503), (13, 503), (13, 503)]
    records = [_record(i, bgg_id, status) for i, (bgg_id, status) in enumerate(log)]
    assert plan_followed(records, plan)
    # Cut short (a retry denied, the breaker) is still the plan; anything else is not.
    assert plan_followed(records[:1], plan)
    assert not plan_followed([*records, _record(9, 12, 200)], plan), "a request after a 200"
    assert not plan_followed([_record(1, 12, 503)], plan), "a 503 the plan did not have"
    assert not plan_followed([_record(1, 11, 200)], plan), "a 200 where the plan had a 503"
    assert plan_followed([_record(1, 99, 503)], plan), "ids outside the plan are not judged"
    assert len(fault_plan(1)) == PLANNED
