"""Notifications of alerts: signed JSON webhooks and e-mail over SMTP, retried, never lost. Free of FastAPI.

Every new alert gets one delivery document per target (`alerts.py`), in `alert_deliveries`:
`pending` until sent, `sent` with the time, or `failed` after NOTIFY_MAX_ATTEMPTS attempts with the
last error: a notification that cannot be delivered is shown on its alert, never dropped.
`deliver_due` claims due deliveries one at a time with an atomic find_one_and_update (so two
workers never send the same one), sends it, and on failure schedules the next attempt after an
exponential backoff (NOTIFY_BACKOFF_SECONDS, doubled each time).

Webhook: a JSON POST with a Slack/Teams-compatible `text` and the alert under `alert`, signed with
HMAC-SHA256 of the raw body under ALERT_WEBHOOK_SECRET in `X-Signature-256: sha256=<hex>` (the
GitHub convention), with `X-Alert-Id` and `X-Delivery-Id`. E-mail: plain text through aiosmtplib;
`send_message` also sends the scheduled reports (`report_schedules.py`).
"""

import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Any

import aiosmtplib
import httpx
from loguru import logger
from pydantic import BaseModel

from alerts import ALERTS, DELIVERIES, SEVERITY_LABELS, STATUS_LABELS
from config import settings
from database import Store
from french import plural

SIGNATURE_HEADER = "X-Signature-256"


class DeliveryError(Exception):
    """The target did not take the notification."""


def sign(body: bytes, secret: str) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(body: bytes, secret: str, signature: str) -> bool:
    return hmac.compare_digest(sign(body, secret), signature)


def _local(dt: datetime) -> str:
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(settings.tz).strftime("%d/%m/%Y %H:%M")


def alert_text(alert: dict[str, Any]) -> str:
    """The alert in a few French lines (webhook `text`, e-mail body)."""
    severity = SEVERITY_LABELS.get(alert["severity"], alert["severity"])
    lines = [
        f"[Alerte d'audit — gravité {severity}] {alert['title']}",
        alert["explanation"],
        f"Période : du {_local(alert['start'])} au {_local(alert['end'])}.",
    ]
    if alert.get("users"):
        lines.append(f"Comptes : {', '.join(alert['users'])}.")
    if alert.get("hosts"):
        lines.append(f"Postes : {', '.join(alert['hosts'])}.")
    if alert.get("objects"):
        lines.append(f"Objets : {', '.join(alert['objects'][:10])}.")
    evidence = plural(alert.get("event_count", 0), "événement d'audit", "événements d'audit")
    lines.append(
        f"Preuves : {evidence} ; "
        f"alerte {alert['_id']} "
        f"({STATUS_LABELS.get(alert.get('status', 'new'), alert.get('status'))})."
    )
    return "\n".join(lines)


def webhook_payload(alert: dict[str, Any]) -> dict[str, Any]:
    keep = ("type", "type_label", "severity", "title", "explanation", "users", "hosts", "objects",
            "start", "end", "count", "event_ids", "event_count", "status", "fingerprint")  # fmt: skip
    body = {k: alert.get(k) for k in keep}
    body["id"] = alert["_id"]
    return {"text": alert_text(alert), "alert": body}


async def send_webhook(url: str, alert: dict[str, Any], delivery_id: str) -> None:
    body = json.dumps(webhook_payload(alert), default=_json_default, ensure_ascii=False).encode()
    headers = {"Content-Type": "application/json", "X-Alert-Id": alert["_id"], "X-Delivery-Id": delivery_id}
    if settings.ALERT_WEBHOOK_SECRET:
        headers[SIGNATURE_HEADER] = sign(body, settings.ALERT_WEBHOOK_SECRET)
    try:
        async with httpx.AsyncClient(
            timeout=settings.NOTIFY_TIMEOUT_SECONDS, follow_redirects=False
        ) as client:
            r = await client.post(url, content=body, headers=headers)
    except httpx.HTTPError as exc:
        raise DeliveryError(f"{type(exc).__name__}: {exc}") from None
    if r.status_code >= 300:
        raise DeliveryError(f"HTTP {r.status_code}")


async def send_email(to: str, alert: dict[str, Any]) -> None:
    message = EmailMessage()
    message["From"] = settings.SMTP_FROM
    message["To"] = to
    severity = SEVERITY_LABELS.get(alert["severity"], alert["severity"])
    message["Subject"] = f"[Audit Oracle] Alerte {severity} : {alert['title']}"[:250]
    message.set_content(alert_text(alert))
    await send_message(message)


async def send_message(message: EmailMessage) -> dict[str, str]:
    """Send one e-mail through the configured SMTP server; the recipients it refused (the others got
    it), with the server's reason. Raises DeliveryError when no recipient got it."""
    if not settings.SMTP_HOST:
        raise DeliveryError("SMTP_HOST n'est pas configuré")
    try:
        refused, _ = await aiosmtplib.send(
            message,
            hostname=settings.SMTP_HOST,
            port=settings.SMTP_PORT,
            username=settings.SMTP_USERNAME,
            password=settings.SMTP_PASSWORD,
            start_tls=settings.SMTP_STARTTLS,
            use_tls=settings.SMTP_TLS,
            timeout=settings.NOTIFY_TIMEOUT_SECONDS,
        )
    except (aiosmtplib.SMTPException, OSError) as exc:
        raise DeliveryError(f"{type(exc).__name__}: {exc}") from None
    return {address: f"{response.code} {response.message}" for address, response in refused.items()}


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()
    return str(value)


class DeliveryRun(BaseModel):
    sent: int = 0
    retried: int = 0
    failed: int = 0


def backoff(attempts: int) -> timedelta:
    """Wait after the n-th failed attempt: NOTIFY_BACKOFF_SECONDS, doubled each time, at most a day."""
    return timedelta(seconds=min(settings.NOTIFY_BACKOFF_SECONDS * 2 ** max(attempts - 1, 0), 86_400))


async def deliver_due(store: Store, *, now: datetime | None = None, limit: int = 100) -> DeliveryRun:
    """Send the deliveries that are due (pending, next attempt reached), each claimed atomically."""
    run = DeliveryRun()
    for _ in range(limit):
        now_ = now or datetime.now(UTC)
        claim = now_ + timedelta(seconds=settings.NOTIFY_TIMEOUT_SECONDS * 3 + 30)
        doc = await store[DELIVERIES].find_one_and_update(
            {"status": "pending", "next_attempt_at": {"$lte": now_}},
            {"$set": {"next_attempt_at": claim}},  # claimed: no other worker takes it meanwhile
            sort=[("next_attempt_at", 1)],
        )
        if doc is None:
            break
        alert = await store[ALERTS].find_one({"_id": doc["alert_id"]})
        try:
            if alert is None:
                raise DeliveryError("alerte introuvable")
            if doc["channel"] == "webhook":
                await send_webhook(doc["target"], alert, str(doc["_id"]))
            else:
                await send_email(doc["target"], alert)
        except DeliveryError as exc:
            attempts = doc.get("attempts", 0) + 1
            failed = attempts >= settings.NOTIFY_MAX_ATTEMPTS
            await store[DELIVERIES].update_one(
                {"_id": doc["_id"]},
                {
                    "$set": {
                        "status": "failed" if failed else "pending",
                        "attempts": attempts,
                        "last_error": str(exc)[:500],
                        "next_attempt_at": None if failed else now_ + backoff(attempts),
                        "updated_at": now_,
                    }
                },
            )
            if failed:
                run.failed += 1
                logger.warning("notify: {} to {} failed after {} attempts: {}", doc["channel"], doc["target"],
                               attempts, exc)  # fmt: skip
            else:
                run.retried += 1
            continue
        await store[DELIVERIES].update_one(
            {"_id": doc["_id"]},
            {"$set": {"status": "sent", "attempts": doc.get("attempts", 0) + 1, "sent_at": now_,
                      "next_attempt_at": None, "last_error": None, "updated_at": now_}},
        )  # fmt: skip
        run.sent += 1
    return run


async def retry(store: Store, delivery_id: str, *, now: datetime | None = None) -> bool:
    """Put a failed delivery back in the queue (an admin fixed the target)."""
    result = await store[DELIVERIES].update_one(
        {"_id": delivery_id, "status": "failed"},
        {"$set": {"status": "pending", "attempts": 0, "next_attempt_at": now or datetime.now(UTC)}},
    )
    return result.modified_count == 1
