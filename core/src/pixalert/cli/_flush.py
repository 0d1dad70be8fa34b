"""``pixalert flush``: deliver whatever is due now, then exit."""

from __future__ import annotations

import click

from . import build_manager, run_async


@click.command()
def flush() -> None:
    """Deliver whatever is due now, then exit.

    Due retries, and work a process that died left behind, are claimed and
    delivered until none is left (``resume_pending()``). Deliveries that are
    not due yet stay waiting. Long-running managers (serve, monitor, an
    application) do this on their own every ``delivery.recover_interval``.
    """
    manager = build_manager(sweep=False)

    async def go() -> int:
        async with manager:
            return await manager.resume_pending()

    count = run_async(go())
    if not count:
        click.echo("flushed: nothing was due")
    else:
        click.echo(
            f"flushed: {count} due {'delivery or job' if count == 1 else 'deliveries and jobs'} run"
        )
