// The master UI: overview, agents, frameworks and tasks, read from the master's public JSON endpoints
// (/master/state and /metrics/snapshot, Mesos's formats), plus task sandboxes read through the master's
// proxy of the agents' /files API (the browser never talks to an agent).

import {
  badge,
  details,
  describeError,
  formatDuration,
  formatMegabytes,
  formatNumber,
  getJSON,
  h,
  kept,
  section,
  setHashQuery,
  startApp,
  table,
  timeElement,
  usageBar,
} from "../common/ui.js";

const ACTIVE_STATES = new Set(["TASK_STAGING", "TASK_STARTING", "TASK_RUNNING", "TASK_KILLING", "TASK_UNREACHABLE"]);
const SHOWN_TASK_STATES = [
  "TASK_STAGING",
  "TASK_STARTING",
  "TASK_RUNNING",
  "TASK_KILLING",
  "TASK_FINISHED",
  "TASK_FAILED",
  "TASK_KILLED",
  "TASK_LOST",
  "TASK_ERROR",
];
const COMPLETED_TASKS_SHOWN = 200;
const SANDBOX_CHUNK = 64 * 1024;
const COMPACT = { compact: true };

// ------------------------------------------------------------------------------------- the model

// One fetch of /master/state, indexed for the views.
async function loadCluster() {
  const state = await getJSON("master/state");
  const agents = new Map((state.slaves ?? []).map((agent) => [agent.id, agent]));
  const frameworks = new Map();
  for (const framework of state.frameworks ?? []) frameworks.set(framework.id, { ...framework, completed: false });
  for (const framework of state.completed_frameworks ?? []) frameworks.set(framework.id, { ...framework, completed: true });
  const tasks = [];
  for (const framework of frameworks.values()) {
    for (const list of ["tasks", "unreachable_tasks", "completed_tasks"]) {
      for (const task of framework[list] ?? []) tasks.push(taskEntry(task, framework, agents));
    }
  }
  for (const task of state.orphan_tasks ?? []) tasks.push(taskEntry(task, null, agents));
  tasks.sort((a, b) => (b.started ?? 0) - (a.started ?? 0));
  updateHeader(state);
  return { state, agents, frameworks, tasks };
}

function taskEntry(task, framework, agents) {
  const agentId = task.slave_id ?? task.agent_id?.value ?? task.agent_id;
  const statuses = [...(task.statuses ?? [])].sort((a, b) => a.timestamp - b.timestamp);
  const running = statuses.find((status) => status.state === "TASK_RUNNING");
  return {
    task,
    framework,
    agent: agents.get(agentId),
    agentId,
    statuses,
    active: ACTIVE_STATES.has(task.state),
    started: (running ?? statuses[0])?.timestamp,
  };
}

function leaderAddress(state) {
  const leader = state.leader_info;
  if (leader?.hostname) return `${leader.hostname}:${leader.port ?? 5050}`;
  return state.leader ? state.leader.replace(/^[^@]*@/, "") : null;
}

function updateHeader(state) {
  const leader = leaderAddress(state);
  document.getElementById("meta").textContent = [
    state.cluster ? `cluster ${state.cluster}` : null,
    leader ? `leader ${leader}` : "no leader",
    state.version ? `Mesos ${state.version}` : null,
  ]
    .filter(Boolean)
    .join(" · ");
}

function sumResources(agents, key) {
  const total = { cpus: 0, mem: 0, disk: 0 };
  for (const agent of agents) {
    for (const name of Object.keys(total)) total[name] += agent[key]?.[name] ?? 0;
  }
  return total;
}

// ---------------------------------------------------------------------------------- small parts

const agentLink = (entry) =>
  entry.agent ? h("a", { href: `#/agents/${encodeURIComponent(entry.agent.id)}` }, entry.agent.hostname) : entry.agentId ?? "–";

const frameworkLink = (framework) =>
  framework ? h("a", { href: `#/frameworks/${encodeURIComponent(framework.id)}` }, framework.name || framework.id) : "–";

const taskHref = (entry) =>
  `#/tasks/${encodeURIComponent(entry.framework?.id ?? entry.task.framework_id)}/${encodeURIComponent(entry.task.id)}`;

const stateBadge = (state) => badge(state.replace(/^TASK_/, "").toLowerCase(), state);

function attributesText(attributes) {
  const pairs = Object.entries(attributes ?? {});
  return pairs.length ? pairs.map(([name, value]) => `${name}:${value}`).join("; ") : "–";
}

function taskTable(entries, { caption, empty, showFramework = true, showAgent = true }) {
  const columns = [
    { title: "ID", class: "id", cell: (entry) => h("a", { href: taskHref(entry) }, entry.task.id) },
    { title: "Name", cell: (entry) => entry.task.name || "–" },
    { title: "State", cell: (entry) => stateBadge(entry.task.state) },
    showFramework && { title: "Framework", cell: (entry) => frameworkLink(entry.framework) },
    showAgent && { title: "Agent", cell: agentLink },
    { title: "Started", class: "nowrap", cell: (entry) => timeElement(entry.started) },
    { title: "CPUs", class: "number", cell: (entry) => formatNumber(entry.task.resources?.cpus) },
    { title: "Mem", class: "number", cell: (entry) => formatMegabytes(entry.task.resources?.mem) },
  ].filter(Boolean);
  return table({ columns, rows: entries, key: (entry) => `${entry.framework?.id}/${entry.task.id}`, caption, empty });
}

function notLeadingWarning(state) {
  if (!state.leader || !state.pid || state.leader === state.pid) return null;
  const leader = leaderAddress(state);
  return h(
    "p",
    { class: "alert warning", role: "status" },
    "This master is not the leader. ",
    leader ? h("a", { href: `//${leader}/` }, `Open the leading master at ${leader}`) : "No leader is elected right now.",
  );
}

// ------------------------------------------------------------------------------------------ views

async function overviewView() {
  const [cluster, metrics] = await Promise.all([loadCluster(), getJSON("metrics/snapshot").catch(() => ({}))]);
  const { state, agents, frameworks, tasks } = cluster;
  const activeAgents = [...agents.values()].filter((agent) => agent.active !== false);
  const total = sumResources(agents.values(), "resources");
  const used = sumResources(agents.values(), "used_resources");
  const uptime = metrics["master/uptime_secs"] ?? (state.start_time ? Date.now() / 1000 - state.start_time : null);
  const frameworkList = [...frameworks.values()];

  // Counters from /metrics/snapshot count every task since this master started; the state only keeps
  // a bounded number of completed tasks, so it is the fallback.
  const taskCounts = SHOWN_TASK_STATES.map((taskState) => {
    const metric = metrics[`master/${taskState.toLowerCase()}s`] ?? metrics[`master/tasks_${taskState.slice(5).toLowerCase()}`];
    const count = metric ?? tasks.filter((entry) => entry.task.state === taskState).length;
    return [taskState, count];
  });

  return h(
    "div",
    {},
    h("h1", {}, state.cluster ? `Cluster ${state.cluster}` : "Cluster overview"),
    notLeadingWarning(state),
    h(
      "div",
      { class: "cards" },
      h(
        "section",
        { class: "card", "aria-labelledby": "card-master" },
        h("h2", { id: "card-master" }, "Master"),
        details([
          ["Cluster", state.cluster || "(unnamed)"],
          ["Leader", leaderAddress(state) ?? "none"],
          ["This master", state.hostname ? `${state.hostname}${state.pid ? ` (${state.pid})` : ""}` : state.pid],
          ["Version", state.version],
          ["Uptime", formatDuration(uptime)],
          ["Elected", timeElement(state.elected_time)],
        ]),
      ),
      h(
        "section",
        { class: "card", "aria-labelledby": "card-resources" },
        h("h2", { id: "card-resources" }, "Resources"),
        usageBar("CPUs", used.cpus, total.cpus),
        usageBar("Memory", used.mem, total.mem, formatMegabytes),
        usageBar("Disk", used.disk, total.disk, formatMegabytes),
      ),
    ),
    h(
      "div",
      { class: "cards" },
      countCard("Agents", activeAgents.length, [
        ["active", activeAgents.length],
        ["inactive", state.deactivated_slaves ?? agents.size - activeAgents.length],
      ]),
      countCard("Frameworks", frameworkList.filter((framework) => !framework.completed && framework.active !== false).length, [
        ["active", frameworkList.filter((framework) => !framework.completed && framework.active !== false).length],
        ["inactive", frameworkList.filter((framework) => !framework.completed && framework.active === false).length],
        ["completed", frameworkList.filter((framework) => framework.completed).length],
      ]),
      countCard(
        "Tasks",
        tasks.filter((entry) => entry.active).length,
        taskCounts.map(([taskState, count]) => [taskState.slice(5).toLowerCase(), count]),
        "active",
      ),
    ),
    section(
      "Active tasks",
      taskTable(tasks.filter((entry) => entry.active).slice(0, 10), { empty: "No active tasks." }),
      h("p", {}, h("a", { href: "#/tasks" }, "All tasks")),
    ),
  );
}

function countCard(title, big, counts, bigLabel = "") {
  const id = `card-${title.toLowerCase()}`;
  return h(
    "section",
    { class: "card", "aria-labelledby": id },
    h("h2", { id }, title),
    h("div", { class: "big" }, String(big), bigLabel ? h("span", { class: "muted" }, ` ${bigLabel}`) : null),
    h(
      "ul",
      { class: "counts", "aria-label": `${title} by state` },
      counts.map(([label, count]) => h("li", { "data-key": label }, `${label}: `, h("strong", {}, formatNumber(count, 0)))),
    ),
  );
}

async function agentsView() {
  const { agents } = await loadCluster();
  const rows = [...agents.values()].sort((a, b) => a.hostname.localeCompare(b.hostname));
  return h(
    "div",
    {},
    h("h1", {}, "Agents"),
    section(
      `${rows.length} registered`,
      table({
        rows,
        key: (agent) => agent.id,
        empty: "No agents are registered.",
        columns: [
          { title: "Hostname", cell: (agent) => h("a", { href: `#/agents/${encodeURIComponent(agent.id)}` }, agent.hostname) },
          { title: "ID", class: "id mono", cell: (agent) => agent.id },
          { title: "State", cell: (agent) => (agent.active === false ? badge("inactive") : badge("active")) },
          {
            title: "CPUs",
            cell: (agent) => usageBar("CPUs", agent.used_resources?.cpus ?? 0, agent.resources?.cpus ?? 0, formatNumber, COMPACT),
          },
          {
            title: "Memory",
            cell: (agent) => usageBar("Memory", agent.used_resources?.mem ?? 0, agent.resources?.mem ?? 0, formatMegabytes, COMPACT),
          },
          {
            title: "Disk",
            cell: (agent) => usageBar("Disk", agent.used_resources?.disk ?? 0, agent.resources?.disk ?? 0, formatMegabytes, COMPACT),
          },
          { title: "Attributes", cell: (agent) => attributesText(agent.attributes) },
          { title: "Registered", class: "nowrap", cell: (agent) => timeElement(agent.registered_time) },
        ],
      }),
    ),
  );
}

async function agentView([agentId]) {
  const { agents, tasks } = await loadCluster();
  const agent = agents.get(agentId);
  if (!agent) return gone("Agent", agentId, "#/agents", "agents");
  const onAgent = tasks.filter((entry) => entry.agentId === agentId);
  return h(
    "div",
    {},
    h("h1", {}, `Agent ${agent.hostname}`, agent.active === false ? badge("inactive") : badge("active")),
    h(
      "div",
      { class: "cards" },
      section(
        "Details",
        details([
          ["ID", h("span", { class: "mono" }, agent.id)],
          ["Address", agent.pid?.replace(/^[^@]*@/, "") ?? `${agent.hostname}:${agent.port ?? 5051}`],
          ["Version", agent.version],
          ["Attributes", attributesText(agent.attributes)],
          ["Registered", timeElement(agent.registered_time)],
          ["Re-registered", agent.reregistered_time ? timeElement(agent.reregistered_time) : null],
          ["Ports", agent.resources?.ports],
        ]),
      ),
      section(
        "Resources",
        usageBar("CPUs", agent.used_resources?.cpus ?? 0, agent.resources?.cpus ?? 0),
        usageBar("Memory", agent.used_resources?.mem ?? 0, agent.resources?.mem ?? 0, formatMegabytes),
        usageBar("Disk", agent.used_resources?.disk ?? 0, agent.resources?.disk ?? 0, formatMegabytes),
      ),
    ),
    section("Active tasks", taskTable(onAgent.filter((entry) => entry.active), { showAgent: false, empty: "No active tasks." })),
    section(
      "Completed tasks",
      taskTable(onAgent.filter((entry) => !entry.active).slice(0, COMPLETED_TASKS_SHOWN), {
        showAgent: false,
        empty: "No completed tasks.",
      }),
    ),
  );
}

async function frameworksView() {
  const { frameworks, tasks } = await loadCluster();
  const all = [...frameworks.values()];
  const activeTaskCount = (framework) => tasks.filter((entry) => entry.framework === framework && entry.active).length;
  const columns = [
    { title: "Name", cell: (framework) => frameworkLink(framework) },
    { title: "ID", class: "id mono", cell: (framework) => framework.id },
    {
      title: "State",
      cell: (framework) =>
        framework.completed ? badge("completed") : framework.active === false ? badge("inactive") : badge("active"),
    },
    { title: "Role", cell: (framework) => framework.role ?? (framework.roles ?? []).join(", ") },
    { title: "User", cell: (framework) => framework.user },
    { title: "Active tasks", class: "number", cell: (framework) => String(activeTaskCount(framework)) },
    { title: "CPUs", class: "number", cell: (framework) => formatNumber(framework.used_resources?.cpus ?? 0) },
    { title: "Mem", class: "number", cell: (framework) => formatMegabytes(framework.used_resources?.mem ?? 0) },
    { title: "Disk", class: "number", cell: (framework) => formatMegabytes(framework.used_resources?.disk ?? 0) },
    { title: "Registered", class: "nowrap", cell: (framework) => timeElement(framework.registered_time) },
  ];
  return h(
    "div",
    {},
    h("h1", {}, "Frameworks"),
    section(
      "Registered frameworks",
      table({ columns, rows: all.filter((f) => !f.completed), key: (f) => f.id, empty: "No frameworks are registered." }),
    ),
    section(
      "Completed frameworks",
      table({ columns, rows: all.filter((f) => f.completed), key: (f) => f.id, empty: "No completed frameworks." }),
    ),
  );
}

async function frameworkView([frameworkId]) {
  const { frameworks, tasks } = await loadCluster();
  const framework = frameworks.get(frameworkId);
  if (!framework) return gone("Framework", frameworkId, "#/frameworks", "frameworks");
  const own = tasks.filter((entry) => entry.framework === framework);
  const state = framework.completed ? "completed" : framework.active === false ? "inactive" : "active";
  return h(
    "div",
    {},
    h("h1", {}, `Framework ${framework.name || framework.id}`, badge(state)),
    h(
      "div",
      { class: "cards" },
      section(
        "Details",
        details([
          ["ID", h("span", { class: "mono" }, framework.id)],
          ["User", framework.user],
          ["Role", framework.role ?? (framework.roles ?? []).join(", ")],
          ["Principal", framework.principal],
          ["Hostname", framework.hostname],
          ["Web UI", framework.webui_url ? h("a", { href: framework.webui_url }, framework.webui_url) : null],
          ["Failover timeout", framework.failover_timeout ? formatDuration(framework.failover_timeout) : null],
          ["Checkpointing", framework.checkpoint === undefined ? null : framework.checkpoint ? "yes" : "no"],
          ["Registered", timeElement(framework.registered_time)],
          ["Re-registered", framework.reregistered_time ? timeElement(framework.reregistered_time) : null],
          ["Disconnected", framework.unregistered_time ? timeElement(framework.unregistered_time) : null],
        ]),
      ),
      section(
        "Resources in use",
        details([
          ["CPUs", formatNumber(framework.used_resources?.cpus ?? 0)],
          ["Memory", formatMegabytes(framework.used_resources?.mem ?? 0)],
          ["Disk", formatMegabytes(framework.used_resources?.disk ?? 0)],
          ["Offered CPUs", formatNumber(framework.offered_resources?.cpus ?? 0)],
          ["Offered memory", formatMegabytes(framework.offered_resources?.mem ?? 0)],
        ]),
      ),
    ),
    section("Active tasks", taskTable(own.filter((entry) => entry.active), { showFramework: false, empty: "No active tasks." })),
    section(
      "Completed tasks",
      taskTable(own.filter((entry) => !entry.active).slice(0, COMPLETED_TASKS_SHOWN), {
        showFramework: false,
        empty: "No completed tasks.",
      }),
    ),
  );
}

async function tasksView(_params, query) {
  const { tasks } = await loadCluster();
  const filter = (query.get("q") ?? "").trim().toLowerCase();
  const matches = (entry) =>
    !filter ||
    [entry.task.id, entry.task.name, entry.task.state, entry.agent?.hostname, entry.framework?.name].some((value) =>
      String(value ?? "").toLowerCase().includes(filter),
    );
  const shown = tasks.filter(matches);
  const completed = shown.filter((entry) => !entry.active);
  return h(
    "div",
    {},
    h("h1", {}, "Tasks"),
    h(
      "div",
      { class: "filters" },
      h(
        "div",
        { class: "field" },
        h("label", { for: "task-filter" }, "Filter"),
        h("input", {
          id: "task-filter",
          type: "search",
          value: query.get("q") ?? "",
          placeholder: "id, name, state, agent or framework",
          oninput: (event) => {
            const next = new URLSearchParams(query);
            if (event.target.value) next.set("q", event.target.value);
            else next.delete("q");
            setHashQuery(next);
            app.refreshNow();
          },
        }),
      ),
    ),
    section("Active tasks", taskTable(shown.filter((entry) => entry.active), { empty: "No active tasks." })),
    section(
      "Completed tasks",
      taskTable(completed.slice(0, COMPLETED_TASKS_SHOWN), {
        empty: "No completed tasks.",
        caption: completed.length > COMPLETED_TASKS_SHOWN ? `The newest ${COMPLETED_TASKS_SHOWN} of ${completed.length}.` : null,
      }),
    ),
  );
}

async function taskView([frameworkId, taskId]) {
  const { tasks } = await loadCluster();
  const entry = tasks.find((candidate) => candidate.task.id === taskId && (candidate.framework?.id ?? candidate.task.framework_id) === frameworkId);
  if (!entry) return gone("Task", taskId, "#/tasks", "tasks");
  const { task } = entry;
  const last = entry.statuses.at(-1);
  const addresses = (last?.container_status?.network_infos ?? [])
    .flatMap((info) => info.ip_addresses ?? [])
    .map((address) => address.ip_address)
    .filter(Boolean);
  const container = task.container;
  return h(
    "div",
    {},
    h("h1", {}, `Task ${task.id}`, stateBadge(task.state)),
    h(
      "div",
      { class: "cards" },
      section(
        "Details",
        details([
          ["Name", task.name],
          ["Framework", frameworkLink(entry.framework)],
          ["Agent", agentLink(entry)],
          ["Executor", task.executor_id || null],
          ["Started", timeElement(entry.started)],
          ["Container", container ? `${container.type}${container.docker?.image ? ` (${container.docker.image})` : ""}` : null],
          ["IP addresses", addresses.join(", ")],
        ]),
      ),
      section(
        "Resources",
        details([
          ["CPUs", formatNumber(task.resources?.cpus)],
          ["Memory", formatMegabytes(task.resources?.mem)],
          ["Disk", formatMegabytes(task.resources?.disk)],
          ["Ports", task.resources?.ports],
        ]),
      ),
    ),
    section(
      "Status history",
      table({
        rows: [...entry.statuses].reverse(),
        key: (status) => `${status.state}@${status.timestamp}`,
        empty: "No status updates yet.",
        columns: [
          { title: "State", cell: (status) => stateBadge(status.state) },
          { title: "Time", class: "nowrap", cell: (status) => timeElement(status.timestamp) },
          { title: "Source", cell: (status) => status.source ?? "–" },
          { title: "Reason", cell: (status) => status.reason ?? "–" },
          { title: "Message", cell: (status) => status.message ?? "–" },
          { title: "Healthy", cell: (status) => (status.healthy === undefined ? "–" : status.healthy ? "yes" : "no") },
        ],
      }),
    ),
    section(
      "Sandbox",
      entry.agent
        ? sandboxViewer({ agentId: entry.agentId, frameworkId, executorId: task.executor_id ?? "", taskId })
        : h("p", { class: "empty" }, "The agent that ran this task is no longer registered."),
    ),
  );
}

function gone(kind, id, href, listName) {
  return h(
    "div",
    {},
    h("h1", {}, `${kind} not found`),
    h("p", {}, `This master does not know ${kind.toLowerCase()} `, h("code", {}, id), ". ", h("a", { href }, `All ${listName}`)),
  );
}

function notFound(path) {
  return h("div", {}, h("h1", {}, "Page not found"), h("p", {}, `Nothing lives at ${path}. `, h("a", { href: "#/" }, "Overview")));
}

// --------------------------------------------------------------------------------------- sandbox

// The task's stdout/stderr, read through the master's proxy of the agent's /files API. Shows the tail
// of the file and follows it while the page is open; page refreshes leave it alone (see `kept`).
function sandboxViewer({ agentId, frameworkId, executorId, taskId }) {
  return kept(`sandbox-${frameworkId}-${taskId}`, (container) => {
    const base = `ui/api/agents/${encodeURIComponent(agentId)}`;
    const output = h("pre", { class: "log", tabindex: "0", "aria-label": "stdout of the task" });
    const note = h("p", { class: "muted", role: "status" });
    const follow = h("input", { type: "checkbox", id: "sandbox-follow", checked: true });
    const buttons = ["stdout", "stderr"].map((name) =>
      h("button", { type: "button", "aria-pressed": String(name === "stdout"), onclick: () => open(name) }, name),
    );
    container.append(
      h(
        "div",
        { class: "sandbox-tabs", role: "group", "aria-label": "Sandbox file" },
        buttons,
        h("label", { for: "sandbox-follow" }, follow, "Follow"),
      ),
      output,
      note,
    );

    let directory = null;
    let file = "stdout";
    let offset = 0;
    let session = 0;
    const byteLength = (text) => new TextEncoder().encode(text).length;

    async function read(path, from, length) {
      const query = new URLSearchParams({ path, offset: String(from), length: String(length) });
      return getJSON(`${base}/files/read?${query}`);
    }

    async function open(name) {
      const mine = ++session;
      file = name;
      for (const button of buttons) button.setAttribute("aria-pressed", String(button.textContent === name));
      output.setAttribute("aria-label", `${name} of the task`);
      output.textContent = "";
      note.textContent = `Reading ${name}…`;
      try {
        if (!directory) {
          const query = new URLSearchParams({ framework_id: frameworkId, task_id: taskId, executor_id: executorId });
          directory = (await getJSON(`${base}/sandbox?${query}`)).directory;
        }
        // offset -1 asks the agent for the file's size only (Mesos semantics): start near the end.
        const size = await read(`${directory}/${name}`, -1, 0).then(
          (answer) => answer.offset ?? 0,
          () => 0,
        );
        if (mine !== session) return;
        offset = Math.max(0, size - SANDBOX_CHUNK);
        if (offset > 0) output.append(`[… the first ${formatNumber(offset, 0)} bytes are not shown …]\n`);
        await poll(mine);
      } catch (error) {
        if (mine === session) note.textContent = `Cannot read ${name}: ${describeError(error)}`;
      }
    }

    async function poll(mine) {
      while (mine === session && container.isConnected) {
        try {
          const chunk = await read(`${directory}/${file}`, offset, SANDBOX_CHUNK);
          if (mine !== session) return;
          const length = chunk.data ? byteLength(chunk.data) : 0;
          if (length) {
            const atBottom = output.scrollTop + output.clientHeight >= output.scrollHeight - 4;
            output.append(chunk.data);
            offset = (chunk.offset ?? offset) + length;
            if (follow.checked && atBottom) output.scrollTop = output.scrollHeight;
          }
          note.textContent = `${directory}/${file}: ${formatNumber(offset, 0)} bytes${follow.checked ? ", following" : ""}.`;
          if (length >= SANDBOX_CHUNK) continue;
        } catch (error) {
          note.textContent = `Cannot read ${file}: ${describeError(error)}`;
        }
        if (!follow.checked) return;
        await new Promise((resolve) => setTimeout(resolve, 2000));
      }
    }

    follow.addEventListener("change", () => directory && follow.checked && poll(++session));
    open("stdout");
  });
}

// ------------------------------------------------------------------------------------------ start

const app = startApp({
  main: document.getElementById("main"),
  status: document.getElementById("status"),
  notFound,
  routes: [
    { pattern: /^\/$/, view: overviewView },
    { pattern: /^\/agents$/, view: agentsView },
    { pattern: /^\/agents\/([^/]+)$/, view: agentView },
    { pattern: /^\/frameworks$/, view: frameworksView },
    { pattern: /^\/frameworks\/([^/]+)$/, view: frameworkView },
    { pattern: /^\/tasks$/, view: tasksView },
    { pattern: /^\/tasks\/([^/]+)\/([^/]+)$/, view: taskView },
  ],
});
