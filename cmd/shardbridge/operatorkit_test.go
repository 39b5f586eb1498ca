package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/knadh/koanf/parsers/yaml"
)

// The operator kit in deploy/: a Grafana dashboard and Prometheus alert rules. These tests check
// them as an operator would use them: promtool accepts the rules and their unit tests pass, the
// dashboard loads and every panel queries the datasource variable, and every metric either one
// queries is one a running process exposes.

var (
	dashboardFile = filepath.Join(repoRoot, "deploy", "grafana", "shardbridge.json")
	alertsFile    = filepath.Join(repoRoot, "deploy", "prometheus", "shardbridge-alerts.yaml")
)

// pendingMetrics are metrics the kit queries that are being added to the process by a change
// made at the same time as the kit, with their labels as the README's metrics table writes them.
// A metric listed here may be missing from /metrics; once it is exposed, the test fails until it
// is removed from this list, so no allowance outlives its reason.
var pendingMetrics = map[string]string{}

// The alerts the rules file must hold, each with a metric its expression must query.
var wantAlerts = map[string]string{
	"ShardbridgeLagHigh":               "shardbridge_kinesis_millis_behind_latest",
	"ShardbridgePoolFull":              "shardbridge_pool_used_bytes",
	"ShardbridgeProduceErrors":         "shardbridge_kafka_produce_errors_total",
	"ShardbridgeCheckpointStale":       "shardbridge_checkpoint_age_seconds",
	"ShardbridgeShardWaitingForParent": "shardbridge_kinesis_parent_wait_seconds",
}

// The metrics of the README's five figures to watch, which the dashboard must show, and the
// parents' wait.
var wantDashboardMetrics = []string{
	"shardbridge_kinesis_millis_behind_latest",                    // lag
	"shardbridge_pool_used_bytes", "shardbridge_pool_limit_bytes", // pool use
	"shardbridge_pool_used_records", "shardbridge_pool_limit_records",
	"shardbridge_kafka_produce_errors_total",  // produce errors
	"shardbridge_checkpoint_age_seconds",      // checkpoint age
	"shardbridge_records_acked_total",         // throughput
	"shardbridge_kinesis_parent_wait_seconds", // resharding
}

// promtoolPath returns promtool from PATH, else the one scripts/install-test-tools puts in
// .tools/bin; without either the test skips.
func promtoolPath(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("promtool"); err == nil {
		return p
	}
	p := filepath.Join(repoRoot, ".tools", "bin", "promtool")
	if _, err := os.Stat(p); err == nil {
		return p
	}
	t.Skip("promtool is not on PATH nor in .tools/bin; install it with: sudo ./scripts/install-test-tools")
	return ""
}

func runPromtool(t *testing.T, args ...string) {
	t.Helper()
	out, err := exec.Command(promtoolPath(t), args...).CombinedOutput()
	if err != nil {
		t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// The alert rules pass `promtool check rules`, and every unit-test file beside them passes
// `promtool test rules`.
func TestOperatorKitPromtool(t *testing.T) {
	promtoolPath(t) // skip before anything runs
	runPromtool(t, "check", "rules", alertsFile)
	tests, err := filepath.Glob(filepath.Join(repoRoot, "deploy", "prometheus", "*_test.yaml"))
	if err != nil || len(tests) == 0 {
		t.Fatalf("no deploy/prometheus/*_test.yaml (%v)", err)
	}
	for _, f := range tests {
		runPromtool(t, "test", "rules", f)
	}
}

type alertRule struct {
	name, expr  string
	annotations map[string]string
}

// loadAlerts returns the alerting rules of the rules file.
func loadAlerts(t *testing.T) []alertRule {
	t.Helper()
	doc := loadYAML(t, alertsFile)
	var out []alertRule
	for _, g := range list(doc["groups"]) {
		for _, r := range list(dict(g)["rules"]) {
			rule := dict(r)
			name, _ := rule["alert"].(string)
			if name == "" {
				continue // a recording rule
			}
			expr, _ := rule["expr"].(string)
			ann := map[string]string{}
			for k, v := range dict(rule["annotations"]) {
				ann[k], _ = v.(string)
			}
			out = append(out, alertRule{name: name, expr: expr, annotations: ann})
		}
	}
	return out
}

// The rules hold the five alerts, each says what to do and where the README's runbook for it is,
// and the unit tests show each one firing and each one silent.
func TestOperatorKitAlertRules(t *testing.T) {
	alerts := loadAlerts(t)
	var names []string
	for _, a := range alerts {
		names = append(names, a.name)
	}
	var want []string
	for n := range wantAlerts {
		want = append(want, n)
	}
	sort.Strings(names)
	sort.Strings(want)
	if !slices.Equal(names, want) {
		t.Fatalf("%s holds the alerts %q; want %q", alertsFile, names, want)
	}

	readme, err := os.ReadFile(filepath.Join(repoRoot, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, operations, _ := strings.Cut(string(readme), "\n## Operations\n")
	operations, _, _ = strings.Cut(operations, "\n## ")
	operations = "\n" + operations // the first paragraph follows the heading's blank line
	runbook := regexp.MustCompile(`Runbook: README\.md, Operations, (.*)$`)
	quoted := regexp.MustCompile(`"([^"]+)"`)
	for _, a := range alerts {
		if !slices.Contains(metricNames(a.expr), wantAlerts[a.name]) {
			t.Errorf("alert %s does not query %s: %s", a.name, wantAlerts[a.name], a.expr)
		}
		if a.annotations["summary"] == "" {
			t.Errorf("alert %s has no summary annotation", a.name)
		}
		desc := strings.TrimSpace(a.annotations["description"])
		m := runbook.FindStringSubmatch(desc)
		if m == nil {
			t.Errorf("alert %s: the description does not end with `Runbook: README.md, Operations, \"...\"`: %q", a.name, desc)
			continue
		}
		sections := quoted.FindAllStringSubmatch(m[1], -1)
		if len(sections) == 0 {
			t.Errorf("alert %s: the runbook names no section: %q", a.name, m[1])
		}
		for _, s := range sections {
			// A runbook is a paragraph that starts with its name in bold, or a ### heading, under
			// Operations (a mention in bold elsewhere in a line does not count).
			if !strings.Contains(operations, "\n\n**"+s[1]) && !strings.Contains(operations, "\n### "+s[1]+"\n") {
				t.Errorf("alert %s points to %q, which README.md's Operations section does not have", a.name, s[1])
			}
		}
	}

	// Each alert has a case where it fires and one where it stays silent.
	tests, err := filepath.Glob(filepath.Join(repoRoot, "deploy", "prometheus", "*_test.yaml"))
	if err != nil || len(tests) == 0 {
		t.Fatalf("no deploy/prometheus/*_test.yaml (%v)", err)
	}
	fires, silent := map[string]bool{}, map[string]bool{}
	for _, f := range tests {
		for _, tc := range list(loadYAML(t, f)["tests"]) {
			for _, c := range list(dict(tc)["alert_rule_test"]) {
				name, _ := dict(c)["alertname"].(string)
				if len(list(dict(c)["exp_alerts"])) > 0 {
					fires[name] = true
				} else {
					silent[name] = true
				}
			}
		}
	}
	for _, a := range alerts {
		if !fires[a.name] {
			t.Errorf("no unit test shows %s firing", a.name)
		}
		if !silent[a.name] {
			t.Errorf("no unit test shows %s silent on healthy series", a.name)
		}
	}
}

type grafanaDatasource struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type grafanaPanel struct {
	ID         int                      `json:"id"`
	Type       string                   `json:"type"`
	Title      string                   `json:"title"`
	Datasource *grafanaDatasource       `json:"datasource"`
	GridPos    struct{ H, W, X, Y int } `json:"gridPos"`
	Targets    []struct {
		Datasource *grafanaDatasource `json:"datasource"`
		Expr       string             `json:"expr"`
		RefID      string             `json:"refId"`
	} `json:"targets"`
	Panels []grafanaPanel `json:"panels"` // a collapsed row's panels
}

type grafanaDashboard struct {
	Title      string `json:"title"`
	UID        string `json:"uid"`
	Templating struct {
		List []struct {
			Name       string             `json:"name"`
			Type       string             `json:"type"`
			Query      any                `json:"query"`
			Datasource *grafanaDatasource `json:"datasource"`
			IncludeAll bool               `json:"includeAll"`
			Multi      bool               `json:"multi"`
		} `json:"list"`
	} `json:"templating"`
	Panels []grafanaPanel `json:"panels"`
}

// dashboardQuery is one PromQL expression of the dashboard and where it is; variable names the
// template variable whose query it is, if it is one.
type dashboardQuery struct{ where, variable, expr string }

// loadDashboard parses the dashboard and returns it with its panels (rows' nested panels
// included) and every PromQL expression it holds: each target's, and the selector of each
// label_values variable query.
func loadDashboard(t *testing.T) (grafanaDashboard, []grafanaPanel, []dashboardQuery) {
	t.Helper()
	b, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d grafanaDashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s is not valid dashboard JSON: %v", dashboardFile, err)
	}
	var panels []grafanaPanel
	var walk func([]grafanaPanel)
	walk = func(ps []grafanaPanel) {
		for _, p := range ps {
			panels = append(panels, p)
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	var queries []dashboardQuery
	labelValues := regexp.MustCompile(`^label_values\((.+),\s*[a-zA-Z_]+\)$`)
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		q, _ := v.Query.(string)
		if m := labelValues.FindStringSubmatch(q); m != nil {
			queries = append(queries, dashboardQuery{"variable " + v.Name, v.Name, m[1]})
		} else {
			t.Errorf("variable %s: query %q is not label_values(selector, label)", v.Name, q)
		}
	}
	for _, p := range panels {
		for _, tg := range p.Targets {
			queries = append(queries, dashboardQuery{fmt.Sprintf("panel %q target %s", p.Title, tg.RefID), "", tg.Expr})
		}
	}
	return d, panels, queries
}

// The dashboard loads, takes its datasource and the connector and shard from variables, every
// panel has the datasource and a query, and it shows the five figures per connector and, where
// the metric has a shard label, per shard.
func TestOperatorKitDashboard(t *testing.T) {
	d, panels, queries := loadDashboard(t)
	if d.Title == "" || d.UID == "" {
		t.Errorf("the dashboard needs a title and a uid; has %q and %q", d.Title, d.UID)
	}
	const dsUID = "${DS_PROMETHEUS}"
	vars := map[string]bool{}
	for _, v := range d.Templating.List {
		vars[v.Name] = true
		switch v.Name {
		case "DS_PROMETHEUS":
			if v.Type != "datasource" || v.Query != "prometheus" {
				t.Errorf("variable DS_PROMETHEUS is a %s of %v; want a datasource variable of prometheus", v.Type, v.Query)
			}
		case "connector", "shard":
			if v.Type != "query" || v.Datasource == nil || v.Datasource.UID != dsUID || !v.IncludeAll || !v.Multi {
				t.Errorf("variable %s: want a multi-value query variable with All, on %s", v.Name, dsUID)
			}
		}
	}
	for _, n := range []string{"DS_PROMETHEUS", "connector", "shard"} {
		if !vars[n] {
			t.Errorf("the dashboard has no %s variable", n)
		}
	}

	ids := map[int]bool{}
	data := 0
	for _, p := range panels {
		if ids[p.ID] {
			t.Errorf("panel id %d is used twice", p.ID)
		}
		ids[p.ID] = true
		if p.GridPos.W <= 0 || p.GridPos.H <= 0 || p.GridPos.X < 0 || p.GridPos.X+p.GridPos.W > 24 {
			t.Errorf("panel %q: gridPos %+v does not fit the 24-column grid", p.Title, p.GridPos)
		}
		if p.Type == "row" {
			if len(p.Targets) > 0 {
				t.Errorf("row %q has targets", p.Title)
			}
			continue
		}
		data++
		if p.Datasource == nil || p.Datasource.UID != dsUID || p.Datasource.Type != "prometheus" {
			t.Errorf("panel %q: datasource %+v; want prometheus %s", p.Title, p.Datasource, dsUID)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no target", p.Title)
		}
		refs := map[string]bool{}
		for _, tg := range p.Targets {
			if strings.TrimSpace(tg.Expr) == "" || tg.RefID == "" || refs[tg.RefID] {
				t.Errorf("panel %q: target %q needs an expression and a refId of its own", p.Title, tg.RefID)
			}
			refs[tg.RefID] = true
			if tg.Datasource != nil && tg.Datasource.UID != dsUID {
				t.Errorf("panel %q target %s: datasource %+v; want %s", p.Title, tg.RefID, tg.Datasource, dsUID)
			}
		}
	}
	if data < len(wantDashboardMetrics) {
		t.Errorf("the dashboard has %d panels with queries; want at least %d", data, len(wantDashboardMetrics))
	}

	// Which metrics carry a connector or a shard label: the README's table, and pendingMetrics.
	_, _, labels := readmeMetrics(t)
	for n, l := range pendingMetrics {
		labels[n] = l
	}
	hasLabel := func(metric, label string) bool {
		return slices.Contains(strings.Split(labels[metric], ", "), label)
	}
	used, perShard := map[string]bool{}, map[string]bool{}
	for _, q := range queries {
		for _, s := range selectors(q.expr) {
			used[s.metric] = true
			// The connector variable's own query lists every connector.
			filtered := q.variable == "connector" || slices.Contains(s.matchers, `connector=~"$connector"`)
			if hasLabel(s.metric, "connector") && !filtered {
				t.Errorf("%s: %s is not filtered by the connector variable (connector=~\"$connector\"): %s", q.where, s.metric, q.expr)
			}
			if slices.Contains(s.matchers, `shard=~"$shard"`) {
				perShard[s.metric] = true
			}
		}
	}
	for _, m := range wantDashboardMetrics {
		if !used[m] {
			t.Errorf("the dashboard does not show %s", m)
		}
	}
	for m := range used {
		if hasLabel(m, "shard") && !perShard[m] {
			t.Errorf("%s has a shard label, but no panel shows it per shard (shard=~\"$shard\")", m)
		}
	}
}

// Every dashboard expression is PromQL that Prometheus accepts: promtool checks them as recording
// rules, with Grafana's variables replaced by values they take.
func TestOperatorKitDashboardQueriesParse(t *testing.T) {
	promtoolPath(t)
	_, _, queries := loadDashboard(t)
	grafanaVars := strings.NewReplacer(`$__rate_interval`, `5m`, `$connector`, `.*`, `$shard`, `.*`)
	var rules strings.Builder
	rules.WriteString("groups:\n  - name: dashboard\n    rules:\n")
	for i, q := range queries {
		expr, err := json.Marshal(grafanaVars.Replace(q.expr)) // a JSON string is a YAML string
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&rules, "      # %s\n      - record: dashboard:query_%d\n        expr: %s\n", q.where, i, expr)
	}
	path := filepath.Join(t.TempDir(), "dashboard-queries.yaml")
	if err := os.WriteFile(path, []byte(rules.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	if len(queries) < len(wantDashboardMetrics) {
		t.Fatalf("found %d dashboard queries", len(queries))
	}
	runPromtool(t, "check", "rules", path)
	if t.Failed() {
		t.Logf("the rules promtool checked:\n%s", rules.String())
	}
}

// Every metric the dashboard and the alert rules query is one a running process exposes (the
// README's metrics scenario), but for pendingMetrics.
func TestOperatorKitMetricsExposed(t *testing.T) {
	queried := map[string][]string{} // metric name: where it is queried
	_, _, queries := loadDashboard(t)
	for _, q := range queries {
		for _, n := range metricNames(q.expr) {
			queried[n] = append(queried[n], "dashboard "+q.where)
		}
	}
	for _, a := range loadAlerts(t) {
		for _, n := range metricNames(a.expr) {
			queried[n] = append(queried[n], "alert "+a.name)
		}
	}
	if len(queried) < len(wantDashboardMetrics) {
		t.Fatalf("found only %d metric names in the kit's queries: %v", len(queried), queried)
	}

	sc := startMetricsScenario(t)
	for name, where := range queried {
		base := name
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			if b, ok := strings.CutSuffix(name, suffix); ok && (sc.families[b] == "histogram" || sc.families[b] == "summary") {
				base = b
			}
		}
		exposed := sc.families[base] != ""
		_, pending := pendingMetrics[name]
		switch {
		case exposed && pending:
			t.Errorf("%s is exposed now: remove it from pendingMetrics", name)
		case !exposed && pending:
			t.Logf("%s is not exposed yet; allowed while it is in pendingMetrics (queried by %s)", name, strings.Join(where, ", "))
		case !exposed:
			t.Errorf("%s, queried by %s, is not a metric the process exposes", name, strings.Join(where, ", "))
		}
	}
	for name := range pendingMetrics {
		if _, ok := queried[name]; !ok {
			t.Errorf("pendingMetrics lists %s, which the kit does not query", name)
		}
	}
}

var (
	// metricNameRE finds the names of this project's, the Go runtime's and the process's metrics
	// in an expression; a preceding character of an identifier would make it part of another name.
	metricNameRE = regexp.MustCompile(`(?:^|[^a-zA-Z0-9_:])((?:shardbridge|go|process)_[a-zA-Z0-9_]*[a-zA-Z0-9])`)
	// stringRE matches a PromQL string literal, whose text is a label value and names nothing.
	stringRE = regexp.MustCompile(`"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'`)
)

// metricNames returns the metric names an expression queries, sorted, each once.
func metricNames(expr string) []string {
	expr = stringRE.ReplaceAllString(expr, `""`)
	var names []string
	for _, m := range metricNameRE.FindAllStringSubmatch(expr, -1) {
		if !slices.Contains(names, m[1]) {
			names = append(names, m[1])
		}
	}
	sort.Strings(names)
	return names
}

// selector is one metric name in an expression and its label matchers, each as written without
// spaces (`connector=~"$connector"`).
type selector struct {
	metric   string
	matchers []string
}

// selectors returns each metric selector of an expression.
func selectors(expr string) []selector {
	var out []selector
	// The positions come from a copy with string literals blanked out (same length), so names in
	// label values are not taken for metrics, while the matchers are read from the original.
	blank := stringRE.ReplaceAllStringFunc(expr, func(s string) string { return strings.Repeat(`"`, len(s)) })
	for _, loc := range metricNameRE.FindAllStringSubmatchIndex(blank, -1) {
		s := selector{metric: expr[loc[2]:loc[3]]}
		rest := strings.TrimLeft(blank[loc[3]:], " ")
		if strings.HasPrefix(rest, "{") {
			open := len(blank) - len(rest)
			end := strings.IndexByte(blank[open:], '}')
			if end > 0 {
				s.matchers = splitMatchers(expr[open+1 : open+end])
			}
		}
		out = append(out, s)
	}
	return out
}

// splitMatchers splits the inside of a selector's braces at the commas outside string literals
// and drops the spaces outside them.
func splitMatchers(inner string) []string {
	var out []string
	var cur strings.Builder
	quote := byte(0)
	for i := 0; i < len(inner); i++ {
		c := inner[i]
		switch {
		case quote != 0:
			cur.WriteByte(c)
			if c == '\\' && i+1 < len(inner) {
				i++
				cur.WriteByte(inner[i])
			} else if c == quote {
				quote = 0
			}
		case c == '"' || c == '\'':
			quote = c
			cur.WriteByte(c)
		case c == ',':
			out = append(out, cur.String())
			cur.Reset()
		case c == ' ' || c == '\t' || c == '\n':
		default:
			cur.WriteByte(c)
		}
	}
	if cur.Len() > 0 {
		out = append(out, cur.String())
	}
	return out
}

func loadYAML(t *testing.T, path string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := yaml.Parser().Unmarshal(b)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return doc
}

func list(v any) []any {
	l, _ := v.([]any)
	return l
}

func dict(v any) map[string]any {
	m, _ := v.(map[string]any)
	return m
}

func TestMetricNamesAndSelectors(t *testing.T) {
	expr := `max by (connector) (shardbridge_checkpoint_age_seconds{connector=~"$connector", shard=~"$shard"} ` +
		`and on (connector, shard) rate(shardbridge_kinesis_records_read_total[5m]) > 0) ` +
		`+ on (job) go_gc_heap_live_bytes{job="shardbridge_x", le="go_not_a_metric"} ` +
		`+ histogram_quantile(0.99, rate(shardbridge_kafka_produce_latency_seconds_bucket {connector="a,b"}[1m]))`
	got := metricNames(expr)
	want := []string{"go_gc_heap_live_bytes", "shardbridge_checkpoint_age_seconds",
		"shardbridge_kafka_produce_latency_seconds_bucket", "shardbridge_kinesis_records_read_total"}
	if !slices.Equal(got, want) {
		t.Errorf("metricNames = %q; want %q", got, want)
	}
	var sels []string
	for _, s := range selectors(expr) {
		sels = append(sels, s.metric+"{"+strings.Join(s.matchers, "|")+"}")
	}
	wantSels := []string{
		`shardbridge_checkpoint_age_seconds{connector=~"$connector"|shard=~"$shard"}`,
		`shardbridge_kinesis_records_read_total{}`,
		`go_gc_heap_live_bytes{job="shardbridge_x"|le="go_not_a_metric"}`,
		`shardbridge_kafka_produce_latency_seconds_bucket{connector="a,b"}`,
	}
	if !slices.Equal(sels, wantSels) {
		t.Errorf("selectors =\n  %s\nwant\n  %s", strings.Join(sels, "\n  "), strings.Join(wantSels, "\n  "))
	}
}
