"""Jinja templates of the report and the feedback pages.

Kept as strings in a module (not .html files) so they ship with the package without any
package-data configuration. Autoescaping is on: every value is HTML-escaped unless a filter
in build.py marks it safe after escaping it itself.
"""

STYLE = """
:root { --ok: #2e7d32; --bad: #c62828; --warn: #ef6c00; --muted: #5f6368; --line: #dadce0; }
* { box-sizing: border-box; }
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif;
       margin: 0; color: #202124; background: #f6f7f9; line-height: 1.45; }
main { max-width: 1060px; margin: 0 auto; padding: 24px 28px 48px; background: #fff;
       min-height: 100vh; }
h1 { font-size: 1.6rem; margin: 0 0 4px; }
h2 { font-size: 1.25rem; margin: 32px 0 10px; padding-bottom: 4px; border-bottom: 1px solid var(--line); }
h3 { font-size: 1.05rem; margin: 18px 0 6px; }
p.sub { color: var(--muted); margin: 0 0 16px; }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(150px, 1fr)); gap: 10px; }
.card { border: 1px solid var(--line); border-radius: 8px; padding: 10px 12px; }
.card .v { font-size: 1.45rem; font-weight: 600; }
.card .l { color: var(--muted); font-size: .85rem; }
figure { margin: 14px 0 22px; }
figure img { display: block; max-width: 100%; height: auto; border: 1px solid var(--line); border-radius: 6px; }
figcaption { color: var(--muted); font-size: .9rem; margin-top: 4px; }
table { border-collapse: collapse; width: 100%; margin: 6px 0 14px; font-size: .93rem; }
th, td { text-align: left; vertical-align: top; padding: 6px 8px; border-bottom: 1px solid var(--line); }
th { background: #f1f3f4; font-weight: 600; }
td.num, th.num { text-align: right; white-space: nowrap; }
table.tests, table.questions { table-layout: fixed; }
table.tests th:nth-child(1) { width: 24%; }
table.tests th:nth-child(2) { width: 11%; }
table.tests th:nth-child(3) { width: 10%; }
table.questions th:nth-child(1) { width: 24%; }
table.questions th:nth-child(2) { width: 21%; }
td code { word-break: break-word; }
code { background: #f1f3f4; border-radius: 3px; padding: 0 3px; font-size: .9em; }
.pass { color: var(--ok); font-weight: 600; }
.fail { color: var(--bad); font-weight: 600; }
.warn { color: var(--warn); font-weight: 600; }
.muted { color: var(--muted); }
.box { border-left: 4px solid var(--warn); background: #fff8e1; padding: 10px 14px; border-radius: 4px; margin: 12px 0; }
.box.ok { border-color: var(--ok); background: #e8f5e9; }
details summary { cursor: pointer; color: #1a73e8; margin: 8px 0; }
a { color: #1a73e8; }
"""

# On load, record how many images decoded and whether any error event fired, as attributes on
# <body>: the browser test reads them from the rendered DOM (no console output of its own).
CHECK_SCRIPT = """
(function () {
  var errors = 0;
  window.addEventListener("error", function () { errors += 1; }, true);
  window.addEventListener("load", function () {
    var imgs = document.images, ok = 0;
    for (var i = 0; i < imgs.length; i++) {
      if (imgs[i].complete && imgs[i].naturalWidth > 0) { ok += 1; }
    }
    document.body.setAttribute("data-images-ok", ok + "/" + imgs.length);
    document.body.setAttribute("data-errors", String(errors));
  });
})();
"""

INDEX = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Grading report: {{ title }}</title>
<style>{{ style }}</style>
<script>{{ script }}</script>
</head>
<body>
<main>
<h1>Grading report: {{ title }}</h1>
<p class="sub">{{ s.files }} file{{ "" if s.files == 1 else "s" }} in the batch;
statistics count {{ s.counting }} submission{{ "" if s.counting == 1 else "s" }}
{%- if s.superseded %} ({{ s.superseded }} older file{{ "" if s.superseded == 1 else "s" }} superseded by a
newer one from the same student {{ "is" if s.superseded == 1 else "are" }} left out){% endif %}.
Generated {{ generated }}.</p>

<section id="summary">
<div class="cards">
  <div class="card"><div class="v">{{ s.counting }}</div><div class="l">submissions</div></div>
  <div class="card"><div class="v">{{ s.normal }}</div><div class="l">graded normally</div></div>
  <div class="card"><div class="v">{{ s.abnormal|length }}</div><div class="l">not graded normally</div></div>
  <div class="card"><div class="v">{{ s.mean|pts if s.scores else "—" }}</div><div class="l">mean score{% if s.max_points %} (of {{ s.max_points|pts }}){% endif %}</div></div>
  <div class="card"><div class="v">{{ s.median|pts if s.scores else "—" }}</div><div class="l">median score</div></div>
  <div class="card"><div class="v">{{ s.max_points|pts if s.scores else "—" }}</div><div class="l">max points</div></div>
</div>
{% if not s.scores %}<p class="box">No submission produced a score: every file could not be graded
(see <a href="#not-graded">below</a>).</p>
{% elif s.unscored %}<p class="muted">Mean and median are over the {{ s.scores|length }} submissions that
produced a score; {{ s.unscored }} file{{ "" if s.unscored == 1 else "s" }} could not be graded at all
(see <a href="#not-graded">below</a>).</p>{% endif %}
</section>

{% if s.flagged %}
<h2 id="flagged">Flagged for review ({{ s.flagged|length }})</h2>
<p class="box">The source screen found code outside the allowlist in these submissions. They earn 0
until you decide: <code>autograder review OUT --accept FILE --reason "..."</code> (or
<code>--reject FILE</code>). The score shown is what the grader gave them.</p>
<table id="flagged-table">
<thead><tr><th>Submission</th><th>Student</th><th>Decision</th><th>Findings</th><th class="num">Graded</th></tr></thead>
<tbody>
{% for r in s.flagged %}<tr data-key="{{ r.key }}">
<td><a href="{{ feedback_href(r) }}">{{ r.source or r.file }}</a></td>
<td>{{ who(r) }}</td>
<td>{% if r.review %}{{ r.review.decision }}ed by {{ r.review.by }}{% else %}needs review{% endif %}</td>
<td><ul>{% for f in r.findings %}<li>{{ f.describe() }}</li>{% endfor %}</ul></td>
<td class="num">{{ r.graded_points|pts }} / {{ r.max_points|pts }}</td>
</tr>
{% endfor %}</tbody>
</table>
{% endif %}

{% if s.test_errors %}
<h2 id="test-errors">Tests that could not run ({{ s.test_errors|length }})</h2>
<p class="box">These tests raised an error instead of passing or failing, so the students below
lost their points without a real verdict. It is a bug in the test or a construct the secure
grader does not support: fix the test in the master notebook, rebuild, and grade again with
the same OUT. Students only saw "This check could not run".</p>
<table id="test-errors-table">
<thead><tr><th>Question</th><th>Test</th><th>Error</th><th class="num">Submissions</th></tr></thead>
<tbody>
{% for question, test, error, n in s.test_errors %}<tr>
<td>{{ question }}</td><td>{{ test }}</td><td><code>{{ error }}</code></td><td class="num">{{ n }}</td>
</tr>
{% endfor %}</tbody>
</table>
{% endif %}

<h2 id="plots">Plots</h2>
{% for img in images %}
<figure id="fig-{{ img.name }}">
  <img src="{{ img.file|url }}" alt="{{ img.alt }}" width="{{ img.width }}" height="{{ img.height }}">
  <figcaption>{{ img.caption }}</figcaption>
</figure>
{% endfor %}

<h2 id="hints">Most frequent hints per question</h2>
<p class="muted">How many submissions got each hint from a failed test (public or hidden), among
questions that were graded normally: the mistakes the class makes most.</p>
{% for q in s.question_names %}
<h3>{{ q }}</h3>
{% set rows = s.hints[q] %}
{% if rows %}
<table class="hints" data-question="{{ q }}">
<thead><tr><th>Hint</th><th class="num">Submissions</th></tr></thead>
<tbody>
{% for hint, count in rows %}<tr><td>{{ hint|hint }}</td><td class="num">{{ count }}</td></tr>
{% endfor %}</tbody>
</table>
{% else %}<p class="muted">No hints: every test of this question passed (or it was not graded normally).</p>{% endif %}
{% endfor %}
{% if not s.question_names %}<p class="muted">No submission was graded, so there are no hints.</p>{% endif %}

<h2 id="not-graded">Submissions not graded normally</h2>
{% if s.abnormal %}
<p class="muted">Timeouts, memory limits, crashes and files that could not be graded. Each links to
the feedback page its student sees.</p>
<table id="not-graded-table">
<thead><tr><th>Submission</th><th>Student</th><th>What happened</th><th class="num">Score</th><th class="num">Runtime</th></tr></thead>
<tbody>
{% for r in s.abnormal %}<tr data-key="{{ r.key }}">
<td><a href="{{ feedback_href(r) }}">{{ r.source or r.file }}</a></td>
<td>{{ who(r) }}</td>
<td>{{ problem(r) }}</td>
<td class="num">{% if r.questions %}{{ r.points|pts }} / {{ r.max_points|pts }}{% else %}&mdash;{% endif %}</td>
<td class="num">{{ "%.1f"|format(r.runtime_s) }} s</td>
</tr>
{% endfor %}</tbody>
</table>
{% else %}
<p class="box ok">Every submission was graded normally.</p>
{% endif %}

{% if s.superseded_results %}
<h2 id="superseded">Superseded files (not counted)</h2>
<table id="superseded-table">
<thead><tr><th>Submission</th><th>Student</th><th>Note</th><th>Status</th></tr></thead>
<tbody>
{% for r in s.superseded_results %}<tr data-key="{{ r.key }}">
<td><a href="{{ feedback_href(r) }}">{{ r.source or r.file }}</a></td>
<td>{{ who(r) }}</td><td>{{ r.note }}</td><td>{{ problem(r) }}</td>
</tr>
{% endfor %}</tbody>
</table>
{% endif %}

<h2 id="all">All submissions</h2>
<details>
<summary>Show all {{ all_results|length }} files with their scores and feedback pages</summary>
<table id="all-table">
<thead><tr><th>Submission</th><th>Student</th><th class="num">Score</th><th>Status</th></tr></thead>
<tbody>
{% for r in all_results %}<tr>
<td><a href="{{ feedback_href(r) }}">{{ r.source or r.file }}</a></td>
<td>{{ who(r) }}</td>
<td class="num">{% if r.questions %}{{ r.points|pts }} / {{ r.max_points|pts }}{% else %}&mdash;{% endif %}</td>
<td>{{ problem(r) }}{% if not r.counts %} <span class="muted">(not counted)</span>{% endif %}</td>
</tr>
{% endfor %}</tbody>
</table>
</details>
</main>
</body>
</html>
"""

FEEDBACK = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Feedback: {{ name }}</title>
<style>{{ style }}</style>
</head>
<body>
<main>
<h1>Feedback: {{ name }}</h1>
{% if not r.questions %}
<div class="box">
<p><strong>We could not grade this file:</strong> {{ status(r) }}.</p>
<p>This is usually a problem with the file, not with your answers. Please check that you submitted
the lab's notebook (.ipynb) or the zip made by its last cell, and ask course staff if this looks
wrong.</p>
</div>
{% else %}
<p class="sub"><strong>Score: {{ r.points|pts }} / {{ r.max_points|pts }}</strong></p>
{% if r.note %}<p class="muted"><em>{{ r.note }}</em></p>{% endif %}
{% if r.status != "graded" %}<p class="box">{{ status(r) }}</p>{% endif %}
<table class="questions">
<thead><tr><th>Question</th><th class="num">Points</th><th>Result</th></tr></thead>
<tbody>
{% for q in r.questions %}<tr>
<td><a href="#{{ q.name|url }}">{{ q.name }}</a></td>
<td class="num">{{ q.points|pts }} / {{ q.max_points|pts }}</td>
<td>{% if not q.graded_normally %}<span class="warn">not graded normally: {{ status(q) }}</span>
{%- elif q.points >= q.max_points %}<span class="pass">all tests passed</span>
{%- else %}<span class="fail">{{ q.tests|rejectattr("passed")|list|length }} of {{ q.tests|length }} tests failed</span>{% endif %}</td>
</tr>
{% endfor %}</tbody>
</table>

{% for q in r.questions %}
<h2 id="{{ q.name }}">{{ q.name }}: {{ q.points|pts }} / {{ q.max_points|pts }}</h2>
{% if not q.graded_normally %}
<p class="box">This question was not graded normally: <strong>{{ status(q) }}</strong>.
{{ explain(status(q)) }} Its tests that did not run count as failed.</p>
{% endif %}
{% if q.tests %}
<table class="tests">
<thead><tr><th>Test</th><th>Result</th><th class="num">Points</th><th>Hint</th></tr></thead>
<tbody>
{% for t in q.tests %}<tr>
<td>{% if t.hidden %}hidden test{% else %}<code>{{ t.name }}</code>{% endif %}</td>
<td>{% if t.passed %}<span class="pass">passed</span>{% else %}<span class="fail">failed</span>{% endif %}</td>
<td class="num">{% if t.hidden %}&mdash;{% else %}{{ t.points|pts }} / {{ t.max_points|pts }}{% endif %}</td>
<td>{% if not t.passed and t.hint %}{{ t.hint|hint }}{% endif %}</td>
</tr>
{% endfor %}</tbody>
</table>
{% endif %}
{% endfor %}
{% endif %}
</main>
</body>
</html>
"""
