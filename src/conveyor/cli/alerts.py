"""`conveyor alerts list | ack | test-sink`."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Column, Table

from conveyor.cli.context import get, out

alerts_app = typer.Typer(
    help="Alerts raised by monitoring, the gate and the release watch.", no_args_is_help=True
)


@alerts_app.command("list")
def list_cmd(
    ctx: typer.Context,
    kind: Annotated[str | None, typer.Option(help="Only alerts of this kind.")] = None,
    open_only: Annotated[
        bool, typer.Option("--open", help="Only alerts nobody acknowledged.")
    ] = False,
    limit: Annotated[int, typer.Option(min=1, help="Newest N alerts.")] = 50,
) -> None:
    """List alerts, newest last, with their acknowledgements and report links."""
    from conveyor.monitoring.alerts import list_alert_views

    c = get(ctx, existing=True)
    views = list_alert_views(c.ws, c.spec.project, kind=kind, include_acked=not open_only)[-limit:]
    rows = [
        {
            "id": v.alert.id,
            "created_at": v.alert.created_at.isoformat(),
            "kind": v.alert.kind,
            "severity": str(v.alert.severity),
            "message": v.alert.message,
            "report": v.link,
            "evidence": dict(v.alert.evidence),
            "acked_by": v.acked_by,
            "acked_at": v.acked_at,
        }
        for v in views
    ]
    if c.json:
        c.emit(rows)
        return
    link = Column("link (opens the evidence)", overflow="fold")  # never cut: it is copied
    table = Table("id", "when", "kind", "severity", "message", "acked by", link)
    for v in views:
        a = v.alert
        table.add_row(
            a.id, f"{a.created_at:%Y-%m-%d %H:%M}", a.kind, str(a.severity), escape(a.message),
            v.acked_by or "", escape(v.link),
        )  # fmt: skip
    out.print(table)


@alerts_app.command("ack")
def ack_cmd(
    ctx: typer.Context,
    alert_id: Annotated[str, typer.Argument(help="The alert's id.")],
    note: Annotated[str, typer.Option(help="Why, or what was done.")] = "",
) -> None:
    """Acknowledge an alert (the first acknowledgement is kept)."""
    from conveyor.monitoring.alerts import ack_alert

    c = get(ctx, existing=True)
    view = ack_alert(c.ws, c.spec.project, alert_id, by=c.ws.actor, note=note)
    c.emit(
        {"id": view.alert.id, "acked_by": view.acked_by, "acked_at": view.acked_at},
        f"acknowledged {view.alert.id} ({view.acked_by}, {view.acked_at})",
    )


@alerts_app.command("test-sink")
def test_sink_cmd(ctx: typer.Context) -> None:
    """Send a test alert to every configured sink; exit 1 if one fails."""
    from conveyor.alerting.sinks import DeliveryError
    from conveyor.monitoring.alerts import send_test_alert

    c = get(ctx)
    deliveries = send_test_alert(c.ws, c.spec)
    c.emit(
        [{"sink": d.sink, "ok": d.ok, "detail": d.detail} for d in deliveries],
        "\n".join(f"{'ok  ' if d.ok else 'FAIL'} {d.sink}: {escape(d.detail)}" for d in deliveries),
    )
    failed = [d.sink for d in deliveries if not d.ok]
    if failed:
        raise DeliveryError(f"{len(failed)} sink(s) failed: {', '.join(failed)}.")


def register(app: typer.Typer) -> None:
    app.add_typer(alerts_app, name="alerts")
