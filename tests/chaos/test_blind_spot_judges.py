"""The judges of the hypotheses that catch the once-blind mutants (chaos/mutants/catalogue.py):
a commit after the response, Sentry events of `/health` or with secrets, retries in step."""

from __future__ import annotations

from chaos.scenarios.database_outage import committed_at_answer


def test_a_delete_counts_as_committed_only_if_the_game_was_gone_at_its_204() -> None:
    assert committed_at_answer(204, gone=True)
    # The commit-after-response mutant: 204 while the harness held the lock, game still there.
    assert not committed_at_answer(204, gone=False)
    # No answer, or another one, is no proof of anything: the delete must answer 204.
    assert not committed_at_answer(None, gone=None)
    assert not committed_at_answer(503, gone=None)
