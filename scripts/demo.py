"""The README demo: run the service on its defaults and show remediations happen.

1. starts a local receiver standing in for the on-call's webhook (it prints escalations),
2. starts `remediator serve` with ./remediator.yaml (SQLite, the example runbooks),
3. fills /tmp/remediator-demo/cache and sends a signed Alertmanager alert: the
   clear-cache runbook empties it (a real ansible-playbook run),
4. applies the bad release in terraform/web (as a deploy pipeline would, local state) and
   sends the alert it causes: the revert-bad-web-release runbook plans, guards and
   applies the previous release on that state (skipped, saying why, without terraform or
   without this repository's git history),
5. sends a signed generic webhook whose runbook fails on purpose: it is escalated,
6. keeps serving (Ctrl-C stops) unless --once.
"""

from __future__ import annotations

import argparse
import base64
import http.server
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from app.errors import VersionError
from app.gitops.versions import GitVersions
from app.signing import secret_key, signed_headers

ROOT = Path(__file__).resolve().parent.parent
WEB_WORKDIR = ROOT / "terraform" / "web"
DEMO_DIR = Path("/tmp/remediator-demo")
PROPOSALS = DEMO_DIR / "proposals.git"  # remediator.yaml's git_hosting.remotes.proposals
DEFAULTS = {
    "REMEDIATOR_API_TOKEN": "demo-api-token-0001",
    "ALERTMANAGER_TOKEN": "demo-alertmanager-token",
    "GENERIC_WEBHOOK_SECRET": "whsec_" + base64.b64encode(b"demo-generic-secret").decode(),
    "ESCALATION_SECRET": "whsec_" + base64.b64encode(b"demo-escalation-secret").decode(),
}


def say(text: str) -> None:
    print(f"\n\033[1m==> {text}\033[0m", flush=True)


class Receiver(http.server.BaseHTTPRequestHandler):
    received: list[dict[str, Any]] = []

    def do_POST(self) -> None:  # noqa: N802 (the stdlib's name)
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        message = json.loads(body)
        Receiver.received.append(message)
        execution = message["execution"]
        say(f"ESCALATION received by the on-call webhook: {message['summary']}")
        for step in execution["steps"]:
            for attempt in step["attempt_log"]:
                print(
                    f"    attempt {attempt['number']}: {attempt['status']} (exit {attempt['rc']})"
                )
        print(f"    error: {execution['error']}\n    link:  {message['execution_url']}", flush=True)
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def wait_ready(client: httpx.Client, server: subprocess.Popen[bytes]) -> None:
    for _ in range(300):
        if server.poll() is not None:
            sys.exit(f"remediator serve exited with {server.returncode}")
        try:
            if client.get("/readyz").status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    sys.exit("remediator serve did not become ready")


def wait_done(client: httpx.Client, execution_id: str) -> dict[str, Any]:
    for _ in range(600):
        execution: dict[str, Any] = client.get(f"/api/executions/{execution_id}").json()
        if execution["status"] not in ("queued", "running", "verifying"):
            return execution
        time.sleep(0.2)
    sys.exit(f"execution {execution_id} did not finish")


def show(execution: dict[str, Any]) -> None:
    print(
        f"    execution {execution['id']}: runbook {execution['runbook']} → {execution['status']}"
    )
    for step in execution["steps"]:
        what = step["spec"].get("playbook") or step["spec"].get("workdir")
        print(f"    step {step['kind']} {what}: {step['status']}, {step['attempts']} attempt(s)")
        if (step["detail"] or {}).get("summary"):
            print(f"      {step['detail']['summary']}")
        tail = [line for line in step["output_tail"].splitlines() if line.strip()][-6:]
        print("      | " + "\n      | ".join(tail))


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--receiver-port", type=int, default=8099)
    parser.add_argument("--once", action="store_true", help="stop after the demo")
    args = parser.parse_args()
    for name, value in DEFAULTS.items():
        os.environ.setdefault(name, value)
    os.environ.setdefault("ESCALATION_WEBHOOK_URL", f"http://127.0.0.1:{args.receiver_port}/")
    os.environ.setdefault("REMEDIATOR_PUBLIC_URL", f"http://127.0.0.1:{args.port}")

    receiver = http.server.ThreadingHTTPServer(("127.0.0.1", args.receiver_port), Receiver)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    say(f"starting remediator serve on 127.0.0.1:{args.port} (config {ROOT / 'remediator.yaml'})")
    server = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "--config", str(ROOT / "remediator.yaml"), "serve",
         "--port", str(args.port), "--log-level", "warning"],
        cwd=ROOT,
    )  # fmt: skip
    base = f"http://127.0.0.1:{args.port}"
    token = os.environ["REMEDIATOR_API_TOKEN"]
    try:
        with httpx.Client(base_url=base, headers={"authorization": f"Bearer {token}"}) as client:
            wait_ready(client, server)
            run_demo(client, args.receiver_port)
            if not args.once:
                say(
                    f"remediator keeps running. Open {base}/ui/ (API token: {token}) to see "
                    "what ran, or send your own alert:"
                )
                print(
                    f"  curl -s -H 'Authorization: Bearer {os.environ['ALERTMANAGER_TOKEN']}' "
                    f"-H 'Content-Type: application/json' \\\n"
                    f"    -d @runbooks/tests/payloads/cache-full.json "
                    f"{base}/webhooks/alertmanager\n"
                    f"  curl -s -H 'Authorization: Bearer {token}' {base}/api/executions\n"
                    "Ctrl-C stops it."
                )
                server.wait()
    except KeyboardInterrupt:
        pass
    finally:
        if server.poll() is None:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=60)
        receiver.shutdown()
    return 0


def send_alert(client: httpx.Client, payload: str) -> list[dict[str, Any]]:
    """Send an example runbook's Alertmanager payload; show and answer what it started."""
    alert = json.loads((ROOT / "runbooks/tests/payloads" / payload).read_text())
    # A fresh startsAt makes this a new notification rather than a redelivery.
    alert["alerts"][0]["startsAt"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    answer = client.post(
        "/webhooks/alertmanager",
        json=alert,
        headers={"authorization": f"Bearer {os.environ['ALERTMANAGER_TOKEN']}"},
    )
    print(f"    POST /webhooks/alertmanager → {answer.status_code} {answer.json()}")
    executions = [wait_done(client, one) for one in answer.json().get("executions", [])]
    for execution in executions:
        show(execution)
    return executions


def run_demo(client: httpx.Client, receiver_port: int) -> None:
    cache = DEMO_DIR / "cache"
    cache.mkdir(parents=True, exist_ok=True)
    for index in range(5):
        (cache / f"chunk-{index}.bin").write_bytes(os.urandom(200_000))
    say(f"{cache} holds {len(list(cache.iterdir()))} files; Alertmanager says CacheDirFull")
    send_alert(client, "cache-full.json")
    print(f"    {cache} now holds {len(list(cache.iterdir()))} files")

    terraform_demo(client)

    say("a generic webhook says ReplicationLagHigh: its runbook fails on purpose")
    body = json.dumps(
        {
            "title": "Replication lag high on orders-db",
            "severity": "critical",
            "service": "orders-db",
            "labels": {"alertname": "ReplicationLagHigh", "cluster": "orders"},
            "annotations": {"lag_seconds": "212"},
            "url": "https://grafana.example/d/db",
            # A new occurrence each run, as the alerts' fresh startsAt is: a second
            # `make demo` on the same database would otherwise fold into the first's.
            "occurrence": f"demo-{uuid.uuid4()}",
        }
    ).encode()
    key = secret_key(os.environ["GENERIC_WEBHOOK_SECRET"])
    headers = signed_headers(key, msg_id=str(uuid.uuid4()), timestamp=int(time.time()), body=body)
    answer = client.post(
        "/webhooks/generic", content=body, headers={**headers, "content-type": "application/json"}
    )
    print(f"    POST /webhooks/generic → {answer.status_code} {answer.json()}")
    failed = answer.json().get("executions", [])
    for execution_id in failed:
        show(wait_done(client, execution_id))
    for _ in range(100):
        if any(m["execution"]["id"] in failed for m in Receiver.received):
            break
        time.sleep(0.1)
    else:
        sys.exit(f"no escalation reached the receiver on port {receiver_port}")


def terraform_demo(client: httpx.Client) -> None:
    terraform = shutil.which("terraform")
    if terraform is None:
        say("skipping the terraform demo: no terraform on PATH (Terraform >= 1.4 runs it)")
        return
    try:
        GitVersions(ROOT / "terraform").resolve(WEB_WORKDIR, "previous", lambda _: None)
    except VersionError as exc:
        say(f"skipping the terraform demo: {exc} (it reverts along this repository's history)")
        return

    say("the deploy pipeline applies terraform/web as committed: release 2.5.0, a bad one")
    env = {**os.environ, "TF_IN_AUTOMATION": "1", "CHECKPOINT_DISABLE": "1"}
    for args in (["init", "-input=false"], ["apply", "-input=false", "-auto-approve"]):
        done = subprocess.run(
            [terraform, f"-chdir={WEB_WORKDIR}", *args, "-no-color"],
            check=False, env=env, capture_output=True, text=True,
        )  # fmt: skip
        if done.returncode != 0:
            sys.exit(f"terraform {args[0]} in {WEB_WORKDIR} failed:\n{done.stderr}")
    print(f"    state says: {released(terraform)}")
    proposals = proposals_remote()
    executions = send_alert(client, "web-release-errors.json")
    print(f"    state now says: {released(terraform)}")
    if proposals:
        show_proposal(executions)


def proposals_remote() -> bool:
    """A bare repository for the revert to be proposed to (remediator.yaml's remote
    `proposals`), whose main is this checkout's HEAD. Nothing is written to the checkout."""
    shutil.rmtree(PROPOSALS, ignore_errors=True)
    made = subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(PROPOSALS)],
                          capture_output=True, text=True, check=False)  # fmt: skip
    if made.returncode == 0:
        made = subprocess.run(
            ["git", "-C", str(ROOT), "push", "-q", str(PROPOSALS), "HEAD:refs/heads/main"],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
    if made.returncode != 0:
        say(f"not proposing the revert in git: no bare remote could be made ({made.stderr})")
        return False
    print(f"    proposals go to {PROPOSALS} (a bare repository; its main is this checkout's HEAD)")
    return True


def show_proposal(executions: list[dict[str, Any]]) -> None:
    """The branch the revert was proposed on, and its diff against main."""
    proposals = [
        step["detail"]["proposal"] for execution in executions for step in execution["steps"]
        if (step.get("detail") or {}).get("proposal", {}).get("commit")
    ]  # fmt: skip
    if not proposals:
        say("the revert was not proposed in git (see the step's summary above)")
        return
    branch = proposals[0]["branch"]
    say(f"the revert is proposed in git: branch {branch} on {PROPOSALS}")
    for args in (["log", "--format=%h %an: %s", f"main..{branch}"], ["diff", "main", branch]):
        shown = subprocess.run(["git", "--git-dir", str(PROPOSALS), *args],
                               capture_output=True, text=True, check=True)  # fmt: skip
        print("    | " + "\n    | ".join(shown.stdout.rstrip().splitlines()))


def released(terraform: str) -> str:
    """The release the live state of terraform/web holds."""
    done = subprocess.run(
        [terraform, f"-chdir={WEB_WORKDIR}", "output", "-json", "release"],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    release = json.loads(done.stdout)
    return f"release {release['version']}, max_connections {release['max_connections']}"


if __name__ == "__main__":
    sys.exit(main())
