#!/usr/bin/env python3
"""Replay corpus JSONL files (tests/corpus/README.md, "Record format") through one or more
gateways and record, for every record, the status each answered. Standard library only.

    benches/replay.py --gateway qv=http://127.0.0.1:18912 --gateway modsec=http://127.0.0.1:18911 \
        --out results.jsonl tests/corpus/attacks.jsonl tests/corpus/benign.jsonl
    benches/replay.py --report results.jsonl      # print the tables again from saved results

A record is sent as the README says: `method`, target `path` + ("?" + `query` if non-empty)
exactly as in the record (http.client with the raw target, nothing re-encoded), the headers as
given, `Content-Type` when there is a body, and the body as UTF-8 bytes, on a fresh connection
(so one request cannot leave a connection in a state that changes the next); head and body in
one write, or with `--body-delay S` the body S seconds after the head. `Host` is set to
`--host` (the corpus has none; a numeric Host is itself a CRS finding, rule 920350).

Outcomes: `blocked` = 403, `refused` = 400, `passed` = 2xx, `other` = anything else (0 when
there was no answer). "Caught" means blocked or refused: in both cases nothing reached the
upstream.

`--audit NAME=PATH` names a ModSecurity audit log (SecAuditLogFormat JSON, Serial): after the
replay, every record that gateway caught is sent to it once more, alone, and the rule ids of the
audit entry it writes are recorded (without the blocking-evaluation rules 949110/980130).
The gateway whose 403 body says `blocked by inspection rule N` (QuantumVault) has its rule read
from the body.

Each output line: {"id", "class", "location", "method", "note", "status": {gw: code},
"reason": {gw: "rule or error code"}}. After the replay the tables are printed as markdown.
"""

import argparse
import collections
import concurrent.futures
import http.client
import json
import os
import re
import sys
import time
import urllib.parse

BLOCKING_RULES = {"949110", "959100", "980130", "980140", "949111"}


def load(paths):
    records = []
    for p in paths:
        with open(p, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                line = line.strip()
                if not line:
                    continue
                try:
                    records.append(json.loads(line))
                except ValueError as e:
                    sys.exit(f"{p}:{n}: not JSON: {e}")
    seen = set()
    for r in records:
        if r["id"] in seen:
            sys.exit(f"duplicate id {r['id']}")
        seen.add(r["id"])
    return records


def target_of(r):
    return r["path"] + ("?" + r["query"] if r["query"] else "")


def send(base, host, r, timeout=10.0, body_delay=0.0):
    """One request on a fresh connection -> (status, first bytes of the body). Status 0 when the
    gateway answered nothing (reset, timeout, unparsable response). The head and the body go
    out in one write, unless `body_delay` (seconds): then the body follows that much later."""
    u = urllib.parse.urlsplit(base)
    conn = http.client.HTTPConnection(u.hostname, u.port or 80, timeout=timeout)
    try:
        conn.putrequest(r["method"], target_of(r), skip_host=True, skip_accept_encoding=True)
        conn.putheader("Host", host)
        for name, value in r["headers"]:
            conn.putheader(name, value)
        body = None
        if r["body"] is not None:
            body = r["body"].encode("utf-8")
            conn.putheader("Content-Type", r["content_type"])
            conn.putheader("Content-Length", str(len(body)))
        if body is not None and body_delay > 0:
            conn.endheaders()
            time.sleep(body_delay)
            conn.send(body)
        else:
            conn.endheaders(body)
        resp = conn.getresponse()
        data = resp.read(4096)
        return resp.status, data.decode("utf-8", "replace")
    except (OSError, http.client.HTTPException) as e:
        return 0, f"no answer: {type(e).__name__}: {e}"
    finally:
        conn.close()


def reason_of(status, body):
    """The rule or error code a QuantumVault-style JSON error body names, else ''."""
    m = re.search(r"inspection rule (\d+)", body)
    if m:
        return m.group(1)
    m = re.search(r'"error"\s*:\s*"([a-z_]+)"', body)
    if m:
        msg = re.search(r'"message"\s*:\s*"((?:[^"\\]|\\.)*)"', body)
        return f"{m.group(1)} ({msg.group(1)})" if msg else m.group(1)
    if status == 0:
        return body[:120]
    return ""


def outcome(status):
    if status == 403:
        return "blocked"
    if status == 400:
        return "refused"
    if 200 <= status < 300:
        return "passed"
    return "other"


def caught(status):
    return status in (403, 400)


def audit_rules(path, gw_base, host, records, results, name, body_delay=0.0):
    """Send each caught record again, alone, and read the rule ids of the audit entry it makes."""
    todo = [r for r in records if caught(results[r["id"]]["status"][name])]
    if not todo:
        return
    pos = os.path.getsize(path) if os.path.exists(path) else 0
    buf = ""
    changed = 0
    for r in todo:
        status, _ = send(gw_base, host, r, body_delay=body_delay)
        if status != results[r["id"]]["status"][name]:
            changed += 1
        want = target_of(r)
        rules = None
        # The entry is written in nginx's log phase, right after the answer; none comes when
        # nginx itself refused the request before ModSecurity saw it (a 400 for `/../` above
        # the root, for instance).
        deadline = time.time() + 1.0
        while rules is None and time.time() < deadline:
            if os.path.exists(path):
                with open(path, "rb") as f:
                    f.seek(pos)
                    chunk = f.read()
                pos += len(chunk)
                buf += chunk.decode("utf-8", "replace")
            while "\n" in buf and rules is None:
                line, buf = buf.split("\n", 1)
                try:
                    t = json.loads(line)["transaction"]
                except (ValueError, KeyError, TypeError):
                    continue
                if t.get("request", {}).get("uri") != want:
                    continue  # an entry for another request (there should be none)
                ids = []
                for m in t.get("messages", []):
                    rid = str(m.get("details", {}).get("ruleId", ""))
                    if rid and rid not in BLOCKING_RULES and rid not in ids:
                        ids.append(rid)
                rules = " ".join(ids) or "-"
            if rules is None:
                time.sleep(0.01)
        results[r["id"]]["reason"][name] = rules if rules is not None else "no audit entry (nginx)"
    if changed:
        print(f"note: {changed} records answered differently on the {name} audit pass", file=sys.stderr)


def replay(records, gateways, host, threads, body_delay):
    results = {}

    def one(r):
        st, rs = {}, {}
        for name, base in gateways:
            status, body = send(base, host, r, body_delay=body_delay)
            st[name], rs[name] = status, reason_of(status, body)
        return r, st, rs

    with concurrent.futures.ThreadPoolExecutor(max_workers=threads) as ex:
        for r, st, rs in ex.map(one, records):
            results[r["id"]] = {
                "id": r["id"], "class": r["class"], "location": r["location"],
                "method": r["method"], "note": r["note"], "status": st, "reason": rs,
            }
    return results


# ---- report -----------------------------------------------------------------------------

def pct(n, d):
    return f"{100.0 * n / d:.1f}%" if d else "-"


def table(title, rows_by, names, key, want_caught):
    """Rows grouped by `key`; per gateway: 403s (share), 400s. `want_caught` only names the
    column: detection for attacks, false positives for benign."""
    groups = collections.OrderedDict()
    for r in rows_by:
        groups.setdefault(r[key], []).append(r)
    label = "blocked 403" if want_caught else "FP 403"
    head = f"| {key} | n |" + "".join(f" {n} {label} | {n} 400 |" for n in names)
    sep = "|---|---:|" + "---:|---:|" * len(names)
    out = [f"**{title}**", "", head, sep]
    keys = sorted(groups)
    for k in keys + ["all"]:
        rs = rows_by if k == "all" else groups[k]
        cells = []
        for n in names:
            b = sum(1 for r in rs if r["status"][n] == 403)
            f = sum(1 for r in rs if r["status"][n] == 400)
            cells.append(f" {b} ({pct(b, len(rs))}) | {f} |")
        name = "**all**" if k == "all" else k
        out.append(f"| {name} | {len(rs)} |" + "".join(cells))
    return "\n".join(out)


def report(results, names, missed_path=None):
    rows = list(results.values())
    attacks = [r for r in rows if r["class"] != "benign"]
    benign = [r for r in rows if r["class"] == "benign"]
    out = []
    other = collections.Counter()
    for r in rows:
        for n in names:
            if outcome(r["status"][n]) == "other":
                other[(n, r["status"][n])] += 1
    if attacks:
        out.append(table("Attacks: detection per class", attacks, names, "class", True))
        out.append(table("Attacks: detection per location", attacks, names, "location", True))
        caught_line = ", ".join(
            f"{n} {sum(caught(r['status'][n]) for r in attacks)}/{len(attacks)} "
            f"({pct(sum(caught(r['status'][n]) for r in attacks), len(attacks))})" for n in names)
        out.append(f"Attacks caught (403 or 400, nothing forwarded): {caught_line}")
    if benign:
        out.append(table("Benign: false positives per location", benign, names, "location", False))
        grey = [r for r in benign if r["note"].startswith("grey:")]
        plain = [r for r in benign if not r["note"].startswith("grey:")]
        lines = ["**Benign: false positives, grey-zone cases apart**", "",
                 "| set | n |" + "".join(f" {n} 403 | {n} 400 |" for n in names),
                 "|---|---:|" + "---:|---:|" * len(names)]
        for label, rs in (("not grey", plain), ("grey:", grey), ("**all benign**", benign)):
            cells = "".join(
                f" {sum(r['status'][n] == 403 for r in rs)} ({pct(sum(r['status'][n] == 403 for r in rs), len(rs))}) |"
                f" {sum(r['status'][n] == 400 for r in rs)} |" for n in names)
            lines.append(f"| {label} | {len(rs)} |{cells}")
        out.append("\n".join(lines))
        # Which rules produce the false positives.
        lines = ["**Benign: rules behind the false positives (403 and 400)**", ""]
        for n in names:
            c = collections.Counter()
            for r in benign:
                if caught(r["status"][n]):
                    why = r["reason"].get(n) or "?"
                    for rid in (why.split() if re.fullmatch(r"[\d ]+", why) else [why]):
                        c[rid] += 1
            top = ", ".join(f"{rid} x{k}" for rid, k in c.most_common(25)) or "none"
            lines.append(f"- {n}: {top}")
        out.append("\n".join(lines))
    if other:
        out.append("Other statuses (neither 2xx, 400 nor 403; 0 = no answer): " + ", ".join(
            f"{n} {s}: {k}" for (n, s), k in sorted(other.items())))
    # What each caught that another missed (attacks), and what each flagged that another passed.
    diff_lines = ["**Differences (caught = 403 or 400)**", "",
                  "| A | B | attacks A missed, B caught | benign A flagged, B passed |", "|---|---|---:|---:|"]
    listing = []
    for a in names:
        for b in names:
            if a == b:
                continue
            am = [r for r in attacks if not caught(r["status"][a]) and caught(r["status"][b])]
            af = [r for r in benign if caught(r["status"][a]) and not caught(r["status"][b])]
            per = collections.Counter(r["class"] for r in am)
            detail = " (" + ", ".join(f"{k} {v}" for k, v in sorted(per.items())) + ")" if per else ""
            diff_lines.append(f"| {a} | {b} | {len(am)}{detail} | {len(af)} |")
            listing.append(f"# attacks {a} missed that {b} caught: {len(am)}")
            listing += [f"{r['id']}\t{r['location']}\t{r['note']}\t{b}:{r['reason'].get(b, '')}" for r in am]
            listing.append(f"# benign {a} flagged that {b} passed: {len(af)}")
            listing += [f"{r['id']}\t{r['location']}\t{r['note']}\t{a}:{r['status'][a]}:{r['reason'].get(a, '')}" for r in af]
    out.append("\n".join(diff_lines))
    if missed_path:
        with open(missed_path, "w", encoding="utf-8") as f:
            f.write("\n".join(listing) + "\n")
        out.append(f"ids of these differences (id, location, note, rule): {missed_path}")
    print("\n\n".join(out))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("files", nargs="*", help="corpus JSONL files")
    ap.add_argument("--gateway", action="append", default=[], metavar="NAME=URL")
    ap.add_argument("--audit", action="append", default=[], metavar="NAME=PATH")
    ap.add_argument("--host", default="api.example.com")
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--body-delay", type=float, default=0.0, metavar="SECONDS",
                    help="send a body this long after the head (default: in the same write)")
    ap.add_argument("--out", help="write per-request results (JSONL) here")
    ap.add_argument("--missed", help="write the ids of the differences here")
    ap.add_argument("--report", metavar="RESULTS", help="only print the tables of a results file")
    a = ap.parse_args()

    if a.report:
        with open(a.report, encoding="utf-8") as f:
            rows = [json.loads(l) for l in f if l.strip()]
        names = list(rows[0]["status"]) if rows else []
        report({r["id"]: r for r in rows}, names, a.missed)
        return
    if not a.files or not a.gateway:
        ap.error("give corpus files and at least one --gateway NAME=URL")
    gateways = [tuple(g.split("=", 1)) for g in a.gateway]
    names = [n for n, _ in gateways]
    records = load(a.files)
    t0 = time.time()
    results = replay(records, gateways, a.host, a.threads, a.body_delay)
    print(f"replayed {len(records)} records through {', '.join(names)} in {time.time() - t0:.1f} s",
          file=sys.stderr)
    for spec in a.audit:
        name, path = spec.split("=", 1)
        base = dict(gateways)[name]
        audit_rules(path, base, a.host, records, results, name, a.body_delay)
    if a.out:
        with open(a.out, "w", encoding="utf-8") as f:
            for r in records:
                f.write(json.dumps(results[r["id"]]) + "\n")
    report(results, names, a.missed)


if __name__ == "__main__":
    main()
