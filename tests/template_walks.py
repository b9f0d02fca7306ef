"""Templates that walk a large value again and again (tests/workflows/test_templating_walks.py,
tests/jobs/test_worker_bounds.py)."""

# A string of 900,000 characters and a list of 100,000 words, each within the value bound.
VALUES = '{% set s = "ab " * 300000 %}{% set l = ("ab " * 100000).split() %}'

# Each reads the whole of a large value; 200 of them were 200 steps before.
WALKS = [
    *(
        "s|" + f
        for f in (
            "wordcount",
            "sort",
            "max",
            "min",
            "unique|list",
            "urlize",
            "join",
            "replace('a', 'b')",
            "title",
            "striptags",
            "wordwrap",
            "pprint",
            "list",
            "upper",
            "capitalize",
            "trim",
            "center(10)",
            "escape",
            "tojson",
            "reverse",
            "truncate(10)",
            "indent",
            "string",
        )
    ),
    *(
        "l|" + f
        for f in (
            "sort",
            "max",
            "min",
            "unique|list",
            "join(',')",
            "map('upper')|list",
            "select('eq', 'x')|list",
            "batch(2)|list",
            "slice(2)|list",
            "map('length')|sum",
            "tojson",
        )
    ),
    "s.count('a')",
    "s.find('zz')",
    "s[:300000].split()",
    "s.upper()",
    "s.replace('a', 'b')",
    "s.strip()",
    "s.index('b')",
    "s.splitlines()",
    "l.index('ab')",
    "l.count('ab')",
    "'zz' in s",
    "'zz' not in s",
    "'zz' in l",
    "'zz' is in s",
    "s == s ~ ''",
    "l == l[:]",
    "s < s",
    "s[1:]|length",
]


def looped(expression: str, times: int = 200) -> str:
    loop = "{% for i in s[:" + str(times) + "] %}{% set x = " + expression + " %}{% endfor %}"
    return VALUES + loop
