"""`conveyor models list | show | request-approval | approve | reject | archive | restore | delete |
gc | card | report | history`: the registry's versions, approvals and lifecycle."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from conveyor.cli.context import get

if TYPE_CHECKING:
    from conveyor.core.approval import Approval
    from conveyor.core.entities import ModelVersion

models_app = typer.Typer(
    name="models",
    help="Model versions: list, approve, archive, delete, cards.",
    no_args_is_help=True,
)

Version = Annotated[int, typer.Argument(help="The model version.")]
Reason = Annotated[str, typer.Option(help="Why; recorded in the audit log.")]


@models_app.command("list")
def list_cmd(ctx: typer.Context) -> None:
    """Every version with its status, aliases, approval and test metrics."""
    c = get(ctx, existing=True)
    model = c.spec.model_name
    aliases: dict[int, list[str]] = {}
    for pointer in c.ws.stores.models.list_aliases(model):
        aliases.setdefault(pointer.version, []).append(pointer.alias)
    approvals = {a.version: a for a in c.ws.stores.models.list_approvals(model)}
    rows = [
        _summary(v, aliases.get(v.version, []), approvals.get(v.version))
        for v in c.ws.stores.models.list_model_versions(model)
    ]
    table = Table("version", "status", "created", "aliases", "approval", "test")
    for r in rows:
        test = ", ".join(f"{k} {v:.3f}" for k, v in r["test"].items() if isinstance(v, float))
        table.add_row(
            str(r["version"]),
            r["status"],
            r["created_at"][:16],
            ", ".join(r["aliases"]) or "-",
            r["approval"] or "-",
            test,
        )
    c.emit(rows, table)


@models_app.command("show")
def show_cmd(ctx: typer.Context, version: Version) -> None:
    """One version: status, lineage, metrics and its approval."""
    from conveyor.registry.approvals import find_approval
    from conveyor.registry.service import get_version

    c = get(ctx, existing=True)
    model = c.spec.model_name
    mv = get_version(c.ws, model, version)
    aliases = [p.alias for p in c.ws.stores.models.list_aliases(model) if p.version == version]
    summary = _summary(mv, aliases, find_approval(c.ws, model, version))
    c.emit({**summary, "lineage": dict(mv.lineage), "metrics": dict(mv.metrics)})


@models_app.command("request-approval")
def request_cmd(ctx: typer.Context, version: Version, reason: Reason = "") -> None:
    """Ask for a version to be approved for production."""
    from conveyor.registry.approvals import request_approval

    c = get(ctx, existing=True)
    approval = request_approval(c.ws, c.spec.model_name, version, reason=reason)
    c.emit(_approval(approval), f"v{version} approval requested by {approval.requested_by}")


@models_app.command("approve")
def approve_cmd(ctx: typer.Context, version: Version, reason: Reason) -> None:
    """Approve a pending request (by someone other than the requester, if the project says)."""
    from conveyor.registry.approvals import approve

    c = get(ctx, existing=True)
    distinct = c.spec.registry.require_approval
    approval = approve(c.ws, c.spec.model_name, version, reason=reason, distinct_actor=distinct)
    c.emit(_approval(approval), f"v{version} approved by {approval.decided_by}")


@models_app.command("reject")
def reject_cmd(ctx: typer.Context, version: Version, reason: Reason) -> None:
    """Reject a pending request."""
    from conveyor.registry.approvals import reject

    c = get(ctx, existing=True)
    distinct = c.spec.registry.require_approval
    approval = reject(c.ws, c.spec.model_name, version, reason=reason, distinct_actor=distinct)
    c.emit(_approval(approval), f"v{version} rejected by {approval.decided_by}")


@models_app.command("archive")
def archive_cmd(ctx: typer.Context, version: Version, reason: Reason = "archived") -> None:
    """Retire a version: it takes no alias until restored."""
    from conveyor.registry.lifecycle import archive_version

    c = get(ctx, existing=True)
    mv = archive_version(c.ws, c.spec.model_name, version, reason=reason)
    c.emit({"version": mv.version, "status": str(mv.status)}, f"v{version} {mv.status}")


@models_app.command("restore")
def restore_cmd(ctx: typer.Context, version: Version, reason: Reason = "restored") -> None:
    """Bring an archived version back to the status it had before."""
    from conveyor.registry.lifecycle import restore_version

    c = get(ctx, existing=True)
    mv = restore_version(c.ws, c.spec.model_name, version, reason=reason)
    c.emit({"version": mv.version, "status": str(mv.status)}, f"v{version} {mv.status}")


@models_app.command("delete")
def delete_cmd(
    ctx: typer.Context,
    version: Version,
    reason: Reason = "deleted",
    keep_production: Annotated[
        int | None,
        typer.Option(help="Refuse to delete one of the last N production versions (default 3)."),
    ] = None,
) -> None:
    """Delete an archived version; the audit log keeps a tombstone."""
    from conveyor.registry.lifecycle import KEEP_PRODUCTION, delete_version

    c = get(ctx, existing=True)
    keep = KEEP_PRODUCTION if keep_production is None else keep_production
    mv = delete_version(c.ws, c.spec.model_name, version, reason=reason, keep_production=keep)
    c.emit({"version": mv.version, "deleted": True}, f"v{version} deleted")


@models_app.command("gc")
def gc_cmd(
    ctx: typer.Context,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Delete nothing; report.")] = False,
    min_age_s: Annotated[
        float | None,
        typer.Option(help="Keep unreferenced blobs younger than this (default 3600 s)."),
    ] = None,
) -> None:
    """Delete artifact blobs that no model version, run or dataset version refers to."""
    from conveyor.registry.lifecycle import GC_MIN_AGE_S, collect_garbage

    c = get(ctx, existing=dry_run)
    min_age_s = GC_MIN_AGE_S if min_age_s is None else min_age_s
    report = collect_garbage(c.ws, dry_run=dry_run, min_age_s=min_age_s)
    verb = "would free" if dry_run else "freed"
    c.emit(
        report.to_dict(),
        f"{len(report.deleted)} of {report.blobs} blobs unreferenced; {verb} "
        f"{report.bytes_freed:,} bytes ({report.young} young blobs kept)",
    )


@models_app.command("card")
def card_cmd(
    ctx: typer.Context,
    version: Version,
    html: Annotated[Path | None, typer.Option(help="Also write the card as HTML here.")] = None,
) -> None:
    """The model card of a version as JSON, and as an HTML page with --html."""
    from conveyor.registry.cards import build_model_card, write_model_card_html

    c = get(ctx, existing=True)
    card = build_model_card(c.ws, c.spec.model_name, version, spec=c.spec)
    if html is not None:
        write_model_card_html(card, html)
    c.emit(card, None if html is None else f"wrote {escape(str(html))}")


@models_app.command("report")
def report_cmd(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The model name (the project's name).")],
    version: Version,
    out: Annotated[Path, typer.Option("--out", help="Where to write the HTML report.")],
) -> None:
    """Write the evaluation report the gate stored with a version (curves, slices, decision)."""
    from conveyor.pipeline.evaluation_report import write_evaluation_report

    c = get(ctx, existing=True)
    path = write_evaluation_report(c.ws, name, version, out)
    c.emit({"model": name, "version": version, "out": str(path)}, f"wrote {escape(str(path))}")


@models_app.command("history")
def history_cmd(ctx: typer.Context) -> None:
    """Every move of the production alias with who, when and why."""
    from conveyor.registry.service import production_history

    c = get(ctx, existing=True)
    events = production_history(c.ws, c.spec.model_name)
    rows = [
        {
            "at": e.at.isoformat(),
            "action": e.action,
            "from": e.from_version,
            "to": e.to_version,
            "actor": e.actor,
            "reason": e.reason,
        }
        for e in events
    ]
    table = Table("at", "action", "from", "to", "actor", "reason")
    for e in events:
        table.add_row(
            f"{e.at:%Y-%m-%d %H:%M:%S}",
            e.action,
            str(e.from_version or "-"),
            str(e.to_version),
            e.actor,
            escape(e.reason),
        )
    c.emit(rows, table)


def _summary(mv: ModelVersion, aliases: list[str], approval: Approval | None) -> dict[str, Any]:
    test = mv.metrics.get("test") or {}
    return {
        "version": mv.version,
        "status": str(mv.status),
        "created_at": mv.created_at.isoformat(),
        "aliases": aliases,
        "approval": str(approval.status) if approval else None,
        "test": dict(test),
        "run_id": mv.run_id,
        "artifact": mv.artifact,
    }


def _approval(approval: Approval) -> dict[str, Any]:
    return {
        "model": approval.model,
        "version": approval.version,
        "status": str(approval.status),
        "requested_by": approval.requested_by,
        "decided_by": approval.decided_by,
        "reason": approval.decision_reason or approval.request_reason,
    }


def register(app: typer.Typer) -> None:
    app.add_typer(models_app)
