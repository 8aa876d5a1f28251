// The Marathon UI: applications, their tasks, deployments, versions and launch queue, read from and
// changed through Marathon's public /v2 API of the serving instance. Server-sent events from /v2/events
// trigger an immediate refresh; a timer refreshes anyway.

import {
  ApiError,
  badge,
  describeError,
  details,
  formatMegabytes,
  formatNumber,
  getJSON,
  h,
  openDialog,
  request,
  section,
  setHashQuery,
  startApp,
  table,
  timeElement,
} from "../common/ui.js";

const STATUSES = ["running", "deploying", "waiting", "delayed", "suspended"];
const APP_EMBEDS = ["apps.tasks", "apps.deployments", "apps.counts", "apps.lastTaskFailure"];
const NO_OFFER_MATCH = {
  UnfulfilledRole: "offers are for another role",
  UnfulfilledConstraint: "a placement constraint is not met",
  NoCorrespondingReservationFound: "no matching reservation",
  AgentMaintenance: "the agent is in maintenance",
  InsufficientCpus: "not enough CPUs",
  InsufficientMemory: "not enough memory",
  InsufficientDisk: "not enough disk",
  InsufficientGpus: "not enough GPUs",
  InsufficientPorts: "not enough ports",
  DeclinedScarceResources: "only scarce resources (GPUs) on offer",
};

// ----------------------------------------------------------------------------------------- model

// "/web/api" -> "v2/apps/web/api": every segment escaped, the slashes kept.
const appPath = (id) => `v2/apps/${id.replace(/^\//, "").split("/").map(encodeURIComponent).join("/")}`;
const appHref = (id) => `#/apps/${encodeURIComponent(id)}`;

async function loadQueue() {
  const answer = await getJSON("v2/queue?embed=lastUnusedOffers").catch(() => ({ queue: [] }));
  return new Map((answer.queue ?? []).filter((item) => item.app).map((item) => [item.app.id, item]));
}

function appStatus(app, queued) {
  const delay = queued?.delay;
  if (delay && !delay.overdue && delay.timeLeftSeconds > 0) return "delayed";
  if (delay?.overdue) return "waiting";
  if ((app.deployments ?? []).length) return "deploying";
  if (app.instances === 0 && !(app.tasksRunning > 0)) return "suspended";
  return "running";
}

const statusBadge = (status) => badge(status, status);

function labelPairs(app) {
  return Object.entries(app.labels ?? {}).map(([key, value]) => (value ? `${key}=${value}` : key));
}

function hasHealthChecks(app) {
  return (app.healthChecks ?? []).length > 0;
}

function instancesText(app) {
  return `${app.tasksRunning ?? 0} / ${app.instances}`;
}

function healthyText(app) {
  return hasHealthChecks(app) ? `${app.tasksHealthy ?? 0} / ${app.instances}` : "no checks";
}

function dockerImage(app) {
  return app.container?.type === "DOCKER" ? app.container.docker?.image : null;
}

function networkMode(app) {
  const mode = app.networks?.[0]?.mode;
  if (mode) return mode === "container/bridge" ? "BRIDGE" : mode === "host" ? "HOST" : mode.toUpperCase();
  return app.container?.docker?.network ?? "HOST";
}

// Container ports for bridged Docker apps, else the app's port definitions (1.5 API, then the legacy one).
function declaredPorts(app) {
  const mappings = app.container?.portMappings ?? app.container?.docker?.portMappings;
  if (mappings?.length) return mappings.map((mapping) => mapping.containerPort);
  if (app.portDefinitions) return app.portDefinitions.map((definition) => definition.port);
  return app.ports ?? [];
}

async function loadInfo() {
  const info = await getJSON("v2/info").catch(() => null);
  if (!info) return;
  document.getElementById("meta").textContent = [
    info.name && info.version ? `${info.name} ${info.version}` : null,
    info.leader ? `leader ${info.leader}` : "no leader",
    info.frameworkId ? `framework ${info.frameworkId}` : null,
  ]
    .filter(Boolean)
    .join(" · ");
}

// ---------------------------------------------------------------------------------- list of apps

async function appsView(_params, query) {
  const [answer, queue] = await Promise.all([getJSON(`v2/apps?${APP_EMBEDS.map((e) => `embed=${e}`).join("&")}`), loadQueue()]);
  const apps = (answer.apps ?? []).map((app) => ({ app, status: appStatus(app, queue.get(app.id)) }));
  apps.sort((a, b) => a.app.id.localeCompare(b.app.id));
  const wantedStatus = query.get("status") ?? "";
  const wantedLabel = query.get("label") ?? "";
  const search = (query.get("q") ?? "").trim().toLowerCase();
  const shown = apps.filter(
    ({ app, status }) =>
      (!wantedStatus || status === wantedStatus) &&
      (!wantedLabel || labelPairs(app).includes(wantedLabel)) &&
      (!search || app.id.toLowerCase().includes(search)),
  );
  const allLabels = [...new Set(apps.flatMap(({ app }) => labelPairs(app)))].sort();
  const countOf = (status) => apps.filter((entry) => entry.status === status).length;

  const setFilter = (name) => (event) => {
    const next = new URLSearchParams(query);
    if (event.target.value) next.set(name, event.target.value);
    else next.delete(name);
    setHashQuery(next);
    app.refreshNow();
  };

  return h(
    "div",
    {},
    h("div", { class: "page-head" }, h("h1", {}, "Applications"), h("a", { class: "button primary", href: "#/create" }, "Create application")),
    h(
      "form",
      { class: "filters", role: "search", "aria-label": "Filter applications", onsubmit: (event) => event.preventDefault() },
      h(
        "div",
        { class: "field" },
        h("label", { for: "filter-search" }, "ID contains"),
        h("input", { id: "filter-search", type: "search", value: query.get("q") ?? "", oninput: setFilter("q") }),
      ),
      h(
        "div",
        { class: "field" },
        h("label", { for: "filter-status" }, "Status"),
        h(
          "select",
          { id: "filter-status", onchange: setFilter("status") },
          h("option", { value: "", selected: !wantedStatus }, `All (${apps.length})`),
          STATUSES.map((status) =>
            h("option", { value: status, selected: status === wantedStatus }, `${status[0].toUpperCase()}${status.slice(1)} (${countOf(status)})`),
          ),
        ),
      ),
      h(
        "div",
        { class: "field" },
        h("label", { for: "filter-label" }, "Label"),
        h(
          "select",
          { id: "filter-label", onchange: setFilter("label") },
          h("option", { value: "", selected: !wantedLabel }, "Any label"),
          allLabels.map((label) => h("option", { value: label, selected: label === wantedLabel }, label)),
        ),
      ),
    ),
    section(
      shown.length === apps.length ? `${apps.length} applications` : `${shown.length} of ${apps.length} applications`,
      table({
        rows: shown,
        key: ({ app }) => app.id,
        empty: apps.length ? "No application matches the filters." : "No applications yet. Create one to get started.",
        columns: [
          { title: "ID", class: "id", cell: ({ app }) => h("a", { href: appHref(app.id) }, app.id) },
          { title: "Status", cell: ({ status }) => statusBadge(status) },
          { title: "Running / wanted", class: "number", cell: ({ app }) => instancesText(app) },
          { title: "Healthy", class: "number", cell: ({ app }) => healthyText(app) },
          { title: "CPUs", class: "number", cell: ({ app }) => formatNumber(app.cpus) },
          { title: "Memory", class: "number", cell: ({ app }) => formatMegabytes(app.mem) },
          { title: "Labels", cell: ({ app }) => labelPairs(app).join(", ") || "–" },
          { title: "Changed", class: "nowrap", cell: ({ app }) => timeElement(app.versionInfo?.lastConfigChangeAt ?? app.version) },
        ],
      }),
    ),
  );
}

// ------------------------------------------------------------------------------------- one app

async function appView([appId]) {
  const [answer, queue, deployments, versions] = await Promise.all([
    getJSON(`${appPath(appId)}?embed=app.tasks&embed=app.deployments&embed=app.counts&embed=app.lastTaskFailure`).catch((error) => {
      if (error instanceof ApiError && error.status === 404) return null;
      throw error;
    }),
    loadQueue(),
    getJSON("v2/deployments").catch(() => []),
    getJSON(`${appPath(appId)}/versions`).catch(() => ({ versions: [] })),
  ]);
  if (!answer) {
    return h(
      "div",
      {},
      h("h1", {}, "Application not found"),
      h("p", {}, "There is no application ", h("code", {}, appId), ". ", h("a", { href: "#/apps" }, "All applications")),
    );
  }
  const current = answer.app;
  const queued = queue.get(current.id);
  const status = appStatus(current, queued);
  const ownDeployments = deployments.filter((deployment) => (deployment.affectedApps ?? []).includes(current.id));
  const tasks = [...(current.tasks ?? [])].sort((a, b) => (a.host ?? "").localeCompare(b.host ?? "") || a.id.localeCompare(b.id));

  return h(
    "div",
    {},
    h("h1", {}, current.id, statusBadge(status)),
    h(
      "div",
      { class: "actions", role: "group", "aria-label": "Application actions" },
      h("a", { class: "button", href: `#/apps/${encodeURIComponent(current.id)}/edit` }, "Edit"),
      h("button", { type: "button", onclick: () => scaleDialog(current) }, "Scale"),
      h("button", { type: "button", onclick: () => restartDialog(current) }, "Restart"),
      h("button", { type: "button", onclick: () => suspendDialog(current), disabled: current.instances === 0 }, "Suspend"),
      h("button", { type: "button", class: "danger", onclick: () => destroyDialog(current) }, "Destroy"),
    ),
    queued ? waitingPanel(queued, status) : null,
    current.lastTaskFailure
      ? h(
          "div",
          { class: "alert error", role: "status" },
          h("h2", {}, "Last task failure"),
          `${current.lastTaskFailure.state} on ${current.lastTaskFailure.host ?? "?"} `,
          timeElement(current.lastTaskFailure.timestamp),
          current.lastTaskFailure.message ? `: ${current.lastTaskFailure.message}` : "",
        )
      : null,
    h(
      "div",
      { class: "cards" },
      section(
        "Instances",
        details([
          ["Running", `${current.tasksRunning ?? 0}`],
          ["Healthy", hasHealthChecks(current) ? `${current.tasksHealthy ?? 0}` : "no health checks"],
          ["Unhealthy", hasHealthChecks(current) ? `${current.tasksUnhealthy ?? 0}` : null],
          ["Staged", `${current.tasksStaged ?? 0}`],
          ["Wanted", `${current.instances}`],
        ]),
      ),
      section(
        "Definition",
        details([
          ["Command", current.cmd ? h("pre", { class: "code" }, current.cmd) : null],
          ["Docker image", dockerImage(current)],
          ["Network", dockerImage(current) ? networkMode(current) : null],
          ["CPUs / memory", `${formatNumber(current.cpus)} / ${formatMegabytes(current.mem)}`],
          ["Ports", declaredPorts(current).join(", ") || null],
          ["Constraints", (current.constraints ?? []).map((constraint) => constraint.filter((part) => part !== "").join(":")).join("; ") || null],
          ["Labels", labelPairs(current).join(", ") || null],
          ["Version", timeElement(current.version)],
        ]),
      ),
    ),
    section(
      "Tasks",
      table({
        rows: tasks,
        key: (task) => task.id,
        empty: "No tasks.",
        columns: [
          { title: "ID", class: "id mono", cell: (task) => task.id },
          { title: "Host", cell: (task) => task.host ?? "–" },
          {
            title: "Ports",
            cell: (task) =>
              (task.ports ?? []).length
                ? (task.ports ?? []).flatMap((port, index) => [index ? ", " : "", h("a", { href: `http://${task.host}:${port}/` }, String(port))])
                : "–",
          },
          { title: "Health", cell: (task) => taskHealth(current, task) },
          { title: "State", cell: (task) => badge((task.state ?? "TASK_STAGING").replace(/^TASK_/, "").toLowerCase(), task.state ?? "TASK_STAGING") },
          { title: "Started", class: "nowrap", cell: (task) => timeElement(task.startedAt ?? task.stagedAt) },
          { title: "Version", class: "nowrap", cell: (task) => timeElement(task.version) },
        ],
      }),
    ),
    section("Deployments", deploymentTable(ownDeployments, "No deployment is running for this application.")),
    section(
      "Versions",
      table({
        rows: [...(versions.versions ?? [])].sort().reverse(),
        key: (version) => version,
        empty: "No versions recorded.",
        columns: [
          { title: "Version", class: "nowrap", cell: (version) => timeElement(version) },
          { title: "", cell: (version) => (version === current.version ? badge("current", "info") : "") },
          {
            title: "Action",
            cell: (version) =>
              version === current.version
                ? "–"
                : h("button", { type: "button", onclick: () => restoreDialog(current, version) }, "Apply this version"),
          },
        ],
      }),
    ),
  );
}

function taskHealth(app, task) {
  if (!hasHealthChecks(app)) return badge("no checks", "info");
  const results = task.healthCheckResults ?? [];
  if (!results.length) return badge("unknown", "waiting");
  return results.every((result) => result.alive) ? badge("healthy") : badge("unhealthy");
}

// Why an app waits: Marathon's launch queue says how many instances are left and why offers were declined.
function waitingPanel(queued, status) {
  const summary = queued.processedOffersSummary ?? {};
  const reasons = (summary.rejectSummaryLastOffers ?? []).filter((step) => step.declined > 0);
  const lastOffers = queued.lastUnusedOffers ?? [];
  const kind = status === "waiting" || status === "delayed" ? "warning" : "info";
  return h(
    "div",
    { class: `alert ${kind}`, role: "status" },
    h(
      "h2",
      {},
      status === "delayed"
        ? `Delayed: the next launch is in ${queued.delay.timeLeftSeconds} s (tasks failed, backing off)`
        : status === "waiting"
          ? "Waiting for resources"
          : "Launching",
    ),
    h(
      "p",
      {},
      `${queued.count} instance${queued.count === 1 ? "" : "s"} left to launch`,
      queued.since ? [", queued since ", timeElement(queued.since)] : "",
      summary.processedOffersCount !== undefined
        ? `; ${summary.processedOffersCount} offers looked at, ${summary.unusedOffersCount ?? 0} not used.`
        : ".",
    ),
    reasons.length
      ? h(
          "ul",
          { "aria-label": "Why offers were declined" },
          reasons.map((step) =>
            h("li", {}, `${NO_OFFER_MATCH[step.reason] ?? step.reason}: declined ${step.declined} of ${step.processed} offers (${step.reason})`),
          ),
        )
      : null,
    lastOffers.length
      ? h(
          "ul",
          { "aria-label": "Last unused offers" },
          lastOffers.slice(0, 5).map((unused) =>
            h("li", {}, `${unused.offer?.hostname ?? "an agent"}: ${(unused.reason ?? []).map((reason) => NO_OFFER_MATCH[reason] ?? reason).join(", ")}`),
          ),
        )
      : null,
  );
}

// ---------------------------------------------------------------------------------- app actions

function forceField() {
  return h(
    "div",
    { class: "field" },
    h("label", {}, h("input", { type: "checkbox", name: "force", class: "inline" }), " Force (override a deployment in progress)"),
  );
}

const forced = (dialog) => dialog.querySelector("input[name=force]")?.checked;
const withForce = (url, force) => (force ? `${url}${url.includes("?") ? "&" : "?"}force=true` : url);

function scaleDialog(current) {
  const input = h("input", { id: "scale-instances", type: "number", min: "0", step: "1", value: String(current.instances), required: true });
  const dialog = openDialog({
    title: `Scale ${current.id}`,
    body: [h("div", { class: "field" }, h("label", { for: "scale-instances" }, "Instances"), input), forceField()],
    confirm: {
      label: "Scale",
      action: async () => {
        await request("PUT", withForce(appPath(current.id), forced(dialog)), { instances: Number(input.value) });
        app.refreshNow();
      },
    },
  });
}

function restartDialog(current) {
  const dialog = openDialog({
    title: `Restart ${current.id}?`,
    body: [h("p", {}, "Every task is replaced by a new one, following the app's upgrade strategy."), forceField()],
    confirm: {
      label: "Restart",
      action: async () => {
        await request("POST", withForce(`${appPath(current.id)}/restart`, forced(dialog)), {});
        app.refreshNow();
      },
    },
  });
}

function suspendDialog(current) {
  const dialog = openDialog({
    title: `Suspend ${current.id}?`,
    body: [h("p", {}, `Scales the app to 0 instances: its ${current.tasksRunning ?? 0} running tasks are killed. The definition is kept.`), forceField()],
    confirm: {
      label: "Suspend",
      action: async () => {
        await request("PUT", withForce(appPath(current.id), forced(dialog)), { instances: 0 });
        app.refreshNow();
      },
    },
  });
}

function destroyDialog(current) {
  const dialog = openDialog({
    title: `Destroy ${current.id}?`,
    body: [
      h("p", {}, "All of its tasks are killed and the application and its versions are deleted. This cannot be undone."),
      forceField(),
    ],
    confirm: {
      label: "Destroy",
      danger: true,
      action: async () => {
        await request("DELETE", withForce(appPath(current.id), forced(dialog)));
        location.hash = "#/apps";
      },
    },
  });
}

function restoreDialog(current, version) {
  openDialog({
    title: `Apply an earlier version of ${current.id}?`,
    body: h("p", {}, "Deploys the definition of version ", timeElement(version), ". The current definition stays in the list of versions."),
    confirm: {
      label: "Apply version",
      action: async () => {
        await request("PUT", appPath(current.id), { version });
        app.refreshNow();
      },
    },
  });
}

// ----------------------------------------------------------------------------------- deployments

function deploymentTable(deployments, empty) {
  return table({
    rows: deployments,
    key: (deployment) => deployment.id,
    empty,
    columns: [
      { title: "ID", class: "id mono", cell: (deployment) => deployment.id },
      {
        title: "Applications",
        cell: (deployment) => (deployment.affectedApps ?? []).flatMap((id, index) => [index ? ", " : "", h("a", { href: appHref(id) }, id)]),
      },
      {
        title: "Progress",
        cell: (deployment) =>
          h(
            "div",
            { class: "progress" },
            h("meter", {
              min: "0",
              max: String(deployment.totalSteps || 1),
              value: String(Math.max(0, (deployment.currentStep ?? 1) - 1)),
              "aria-label": "Steps done",
            }),
            `step ${deployment.currentStep ?? 0} of ${deployment.totalSteps ?? 0}`,
          ),
      },
      {
        title: "Current actions",
        cell: (deployment) => (deployment.currentActions ?? []).map((action) => `${action.action} ${action.app ?? action.pod ?? ""}`).join("; ") || "–",
      },
      { title: "Started", class: "nowrap", cell: (deployment) => timeElement(deployment.version) },
      {
        title: "Actions",
        cell: (deployment) =>
          h(
            "div",
            { class: "actions" },
            h("button", { type: "button", onclick: () => rollbackDialog(deployment) }, "Roll back"),
            h("button", { type: "button", onclick: () => stopDialog(deployment) }, "Stop"),
          ),
      },
    ],
  });
}

function rollbackDialog(deployment) {
  openDialog({
    title: "Roll back this deployment?",
    body: h("p", {}, `A new deployment returns ${(deployment.affectedApps ?? []).join(", ")} to where they were before.`),
    confirm: {
      label: "Roll back",
      action: async () => {
        await request("DELETE", `v2/deployments/${encodeURIComponent(deployment.id)}`);
        app.refreshNow();
      },
    },
  });
}

function stopDialog(deployment) {
  openDialog({
    title: "Stop this deployment?",
    body: h("p", {}, "The deployment stops where it is, without rolling back: the apps stay partly deployed."),
    confirm: {
      label: "Stop deployment",
      danger: true,
      action: async () => {
        await request("DELETE", `v2/deployments/${encodeURIComponent(deployment.id)}?force=true`);
        app.refreshNow();
      },
    },
  });
}

async function deploymentsView() {
  const deployments = await getJSON("v2/deployments");
  return h("div", {}, h("h1", {}, "Deployments"), section(`${deployments.length} in progress`, deploymentTable(deployments, "No deployments in progress.")));
}

// --------------------------------------------------------------------------------- create / edit

// Fields of the form; `paths` are the JSON paths (Marathon's error `details[].path`) whose errors are
// shown under the field.
const FIELDS = [
  { name: "id", span: 2, label: "ID", hint: "For example /nginx or /web/api: lowercase letters, digits, '-' and '.'", paths: ["/id"] },
  { name: "cmd", span: 4, label: "Command", textarea: true, hint: "Run with /bin/sh -c; $PORT0 is the first assigned port. Optional with a Docker image.", paths: ["/cmd", "/args"] },
  { name: "image", span: 2, label: "Docker image", hint: "For example nginx. Leave empty to run the command on the host.", paths: ["/container"] },
  { name: "network", span: 2, label: "Docker network", choices: ["BRIDGE", "HOST"], paths: ["/networks", "/container/docker/network"] },
  { name: "cpus", label: "CPUs", type: "number", step: "any", paths: ["/cpus"] },
  { name: "mem", label: "Memory (MiB)", type: "number", step: "any", paths: ["/mem"] },
  { name: "instances", label: "Instances", type: "number", step: "1", paths: ["/instances"] },
  {
    name: "ports",
    label: "Ports",
    hint: "Comma-separated. Bridged Docker: container ports. Otherwise host ports; 0 picks any free port.",
    paths: ["/portDefinitions", "/container/portMappings", "/container/docker/portMappings", "/ports"],
  },
  { name: "constraints", span: 2, label: "Constraints", textarea: true, hint: "One per line: hostname:UNIQUE, rack:CLUSTER:a, hostname:MAX_PER:2", paths: ["/constraints"] },
  { name: "labels", span: 2, label: "Labels", textarea: true, hint: "One per line: key=value", paths: ["/labels"] },
];

// Fields Marathon reports but does not accept back.
const READ_ONLY_FIELDS = [
  "version", "versionInfo", "tasks", "deployments", "tasksStaged", "tasksRunning", "tasksHealthy", "tasksUnhealthy",
  "lastTaskFailure", "readinessCheckResults", "taskStats", "counts",
];

function valuesFromApp(app) {
  return {
    id: app.id ?? "",
    cmd: app.cmd ?? "",
    image: dockerImage(app) ?? "",
    network: networkMode(app) === "HOST" ? "HOST" : "BRIDGE",
    cpus: app.cpus ?? "",
    mem: app.mem ?? "",
    instances: app.instances ?? "",
    ports: declaredPorts(app).join(", "),
    constraints: (app.constraints ?? []).map((constraint) => constraint.filter((part) => part !== "").join(":")).join("\n"),
    labels: Object.entries(app.labels ?? {}).map(([key, value]) => `${key}=${value}`).join("\n"),
  };
}

// A number when it reads as one; otherwise the text itself, so that the API names the bad field.
const numberOrText = (text) => (text.trim() !== "" && Number.isFinite(Number(text)) ? Number(text) : text.trim());

function appFromValues(values, base) {
  const app = structuredClone(base ?? {});
  app.id = values.id.trim();
  if (values.cmd.trim()) app.cmd = values.cmd.trim();
  else delete app.cmd;
  for (const name of ["cpus", "mem", "instances"]) {
    if (String(values[name]).trim() === "") delete app[name];
    else app[name] = numberOrText(String(values[name]));
  }
  const ports = values.ports.split(/[\s,]+/).filter(Boolean).map(numberOrText);
  const image = values.image.trim();
  if (image) {
    const oldMappings = app.container?.portMappings ?? app.container?.docker?.portMappings ?? [];
    app.container = { ...(app.container ?? {}), type: "DOCKER", docker: { ...(app.container?.docker ?? {}), image } };
    // The 1.5 networking API (what Marathon answers with); drop the legacy places of the same facts.
    delete app.container.docker.network;
    delete app.container.docker.portMappings;
    delete app.ports;
    app.networks = [{ mode: values.network === "HOST" ? "host" : "container/bridge" }];
    if (values.network === "HOST") {
      delete app.container.portMappings;
      app.portDefinitions = ports.map((port, index) => ({ protocol: "tcp", ...(app.portDefinitions?.[index] ?? {}), port }));
    } else {
      delete app.portDefinitions;
      app.container.portMappings = ports.map((port, index) => ({
        hostPort: 0,
        protocol: "tcp",
        ...(oldMappings[index] ?? {}),
        containerPort: port,
      }));
    }
  } else {
    if (app.container?.type === "DOCKER") delete app.container;
    delete app.networks;
    delete app.ports;
    app.portDefinitions = ports.map((port, index) => ({ protocol: "tcp", ...(app.portDefinitions?.[index] ?? {}), port }));
  }
  app.constraints = values.constraints
    .split("\n")
    .map((line) => line.trim())
    .filter(Boolean)
    .map((line) => line.split(":").map((part) => part.trim()));
  app.labels = Object.fromEntries(
    values.labels
      .split("\n")
      .map((line) => line.trim())
      .filter(Boolean)
      .map((line) => (line.includes("=") ? [line.slice(0, line.indexOf("=")).trim(), line.slice(line.indexOf("=") + 1).trim()] : [line, ""])),
  );
  return app;
}

// Marathon writes "/portDefinitions(0)/port" or "/portDefinitions/0/port"; compare in one form.
const normalisePath = (path) => (path ?? "").replace(/\((\d+)\)/g, "/$1").replace(/\/+$/, "");

function fieldForPath(path) {
  const wanted = normalisePath(path);
  let best = null;
  for (const field of FIELDS) {
    for (const prefix of field.paths) {
      if ((wanted === prefix || wanted.startsWith(`${prefix}/`)) && (!best || prefix.length > best.prefix.length)) {
        best = { field, prefix };
      }
    }
  }
  return best?.field ?? null;
}

async function editorView([appId]) {
  const editing = appId !== undefined;
  let base = {};
  if (editing) {
    base = (await getJSON(appPath(appId))).app;
    for (const name of READ_ONLY_FIELDS) delete base[name];
  }
  // A new app starts small, with bridged networking for the Docker case (as the reference nginx app).
  const values = editing ? valuesFromApp(base) : { ...valuesFromApp({ cpus: 0.1, mem: 64, instances: 1 }), network: "BRIDGE" };
  let jsonMode = false;

  const controls = {};
  const errors = {};
  const fieldElements = FIELDS.map((field) => {
    const id = `app-${field.name}`;
    const hintId = `${id}-hint`;
    const errorId = `${id}-error`;
    const common = { id, name: field.name, "aria-describedby": `${field.hint ? hintId : ""} ${errorId}`.trim() };
    let control;
    if (field.choices) {
      control = h("select", common, field.choices.map((choice) => h("option", { value: choice, selected: values[field.name] === choice }, choice)));
    } else if (field.textarea) {
      control = h("textarea", { ...common, rows: field.name === "cmd" ? "2" : "3" }, String(values[field.name]));
    } else {
      control = h("input", {
        ...common,
        type: field.type ?? "text",
        step: field.step,
        value: String(values[field.name]),
        readonly: editing && field.name === "id",
        autocomplete: "off",
        spellcheck: "false",
      });
    }
    controls[field.name] = control;
    errors[field.name] = h("div", { class: "error", id: errorId });
    return h(
      "div",
      { class: `field${field.span ? ` span-${field.span}` : ""}` },
      h("label", { for: id }, field.label),
      control,
      field.hint ? h("div", { class: "hint", id: hintId }, field.hint) : null,
      errors[field.name],
    );
  });

  const formPart = h("div", { class: "form-grid" }, fieldElements);
  const jsonError = h("div", { class: "error", id: "app-json-error" });
  const jsonArea = h("textarea", { id: "app-json", class: "json", spellcheck: "false", "aria-describedby": "app-json-error" });
  const jsonPart = h(
    "div",
    { class: "field", hidden: true },
    h("label", { for: "app-json" }, "Application definition (JSON, as for POST /v2/apps)"),
    jsonArea,
    jsonError,
  );
  const summary = h("div", { id: "form-summary" });
  const modeButton = h("button", { type: "button", "aria-pressed": "false", onclick: () => switchMode() }, "Edit as JSON");
  const submitButton = h("button", { type: "submit", class: "primary" }, editing ? "Save and deploy" : "Create application");

  const currentValues = () => Object.fromEntries(FIELDS.map((field) => [field.name, controls[field.name].value]));

  function clearErrors() {
    summary.replaceChildren();
    jsonError.textContent = "";
    jsonArea.removeAttribute("aria-invalid");
    for (const field of FIELDS) {
      errors[field.name].textContent = "";
      controls[field.name].removeAttribute("aria-invalid");
    }
  }

  function switchMode() {
    clearErrors();
    if (!jsonMode) {
      jsonArea.value = JSON.stringify(appFromValues(currentValues(), base), null, 2);
    } else {
      let parsed;
      try {
        parsed = JSON.parse(jsonArea.value);
      } catch (error) {
        jsonError.textContent = `This is not valid JSON: ${error.message}`;
        jsonArea.setAttribute("aria-invalid", "true");
        jsonArea.focus();
        return;
      }
      base = parsed;
      const next = valuesFromApp(parsed);
      for (const field of FIELDS) controls[field.name].value = String(next[field.name]);
    }
    jsonMode = !jsonMode;
    formPart.hidden = jsonMode;
    jsonPart.hidden = !jsonMode;
    modeButton.setAttribute("aria-pressed", String(jsonMode));
    modeButton.textContent = jsonMode ? "Edit as form" : "Edit as JSON";
    (jsonMode ? jsonArea : controls.id).focus();
  }

  function showErrors(error) {
    const details = error.body?.details ?? [];
    const unplaced = [];
    let first = null;
    for (const detail of details) {
      const messages = detail.errors ?? (detail.message ? [detail.message] : []);
      const field = jsonMode ? null : fieldForPath(detail.path);
      if (field) {
        errors[field.name].textContent = [errors[field.name].textContent, ...messages].filter(Boolean).join("; ");
        controls[field.name].setAttribute("aria-invalid", "true");
        first ??= controls[field.name];
      } else {
        unplaced.push(`${detail.path || "/"}: ${messages.join("; ")}`);
      }
    }
    if (jsonMode && details.length) {
      jsonError.textContent = unplaced.join("\n");
      jsonArea.setAttribute("aria-invalid", "true");
      first = jsonArea;
      unplaced.length = 0;
    }
    summary.replaceChildren(
      h(
        "div",
        { class: "alert error", role: "alert" },
        h("strong", {}, error.status === 422 ? "Marathon did not accept this definition" : `Marathon answered ${error.status || "nothing"}`),
        `: ${error.message}`,
        unplaced.length ? h("ul", {}, unplaced.map((line) => h("li", {}, line))) : null,
      ),
    );
    (first ?? summary).focus?.();
  }

  async function submit(event) {
    event.preventDefault();
    clearErrors();
    let body;
    if (jsonMode) {
      try {
        body = JSON.parse(jsonArea.value);
      } catch (error) {
        jsonError.textContent = `This is not valid JSON: ${error.message}`;
        jsonArea.setAttribute("aria-invalid", "true");
        jsonArea.focus();
        return;
      }
    } else {
      body = appFromValues(currentValues(), base);
    }
    submitButton.disabled = true;
    try {
      if (editing) await request("PUT", appPath(appId), body);
      else await request("POST", "v2/apps", body);
      const id = body.id?.startsWith("/") ? body.id : `/${body.id ?? ""}`;
      location.hash = appHref(editing ? appId : id);
    } catch (error) {
      if (error instanceof ApiError) showErrors(error);
      else summary.replaceChildren(h("p", { class: "alert error", role: "alert" }, describeError(error)));
    } finally {
      submitButton.disabled = false;
    }
  }

  return h(
    "div",
    {},
    h("h1", {}, editing ? `Edit ${appId}` : "Create application"),
    h(
      "form",
      { class: "panel", novalidate: true, onsubmit: submit, "aria-label": editing ? `Edit ${appId}` : "New application" },
      h("div", { class: "actions" }, modeButton),
      summary,
      formPart,
      jsonPart,
      h(
        "div",
        { class: "actions" },
        submitButton,
        h("a", { class: "button", href: editing ? appHref(appId) : "#/apps" }, "Cancel"),
      ),
    ),
  );
}

function notFound(path) {
  return h("div", {}, h("h1", {}, "Page not found"), h("p", {}, `Nothing lives at ${path}. `, h("a", { href: "#/apps" }, "Applications")));
}

// ------------------------------------------------------------------------------------------ start

// The list of apps is the home page; give it its own address so the navigation marks it.
if (!location.hash || location.hash === "#/") history.replaceState(null, "", "#/apps");

const app = startApp({
  main: document.getElementById("main"),
  status: document.getElementById("status"),
  intervalMs: 3000,
  notFound,
  routes: [
    { pattern: /^\/(?:apps)?$/, view: appsView },
    { pattern: /^\/create$/, view: () => editorView([]), refresh: false },
    { pattern: /^\/apps\/([^/]+)\/edit$/, view: editorView, refresh: false },
    { pattern: /^\/apps\/([^/]+)$/, view: appView },
    { pattern: /^\/deployments$/, view: deploymentsView },
  ],
});

loadInfo();

// Server-sent events: refresh as soon as something changes (bursts collapse into one refresh).
let pending = null;
const events = new EventSource("v2/events");
events.onmessage = () => {
  clearTimeout(pending);
  pending = setTimeout(() => app.refreshNow(), 250);
};
for (const type of ["status_update_event", "deployment_info", "deployment_success", "deployment_failed", "api_post_event", "instance_changed_event", "health_status_changed_event"]) {
  events.addEventListener(type, events.onmessage);
}
