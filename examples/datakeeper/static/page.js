// The cluster page: draws the status this node streams (GET /events, one
// "status" event per change) and writes keys through the form.
"use strict";

const $ = (id) => document.getElementById(id);

function cell(row, text, className) {
  const td = row.insertCell();
  td.textContent = text === null || text === undefined ? "–" : String(text);
  if (className) td.className = className;
  return td;
}

function hex(number) {
  return typeof number === "number" ? "0x" + number.toString(16) : "–";
}

function renderNodes(status) {
  const body = $("nodes").tBodies[0];
  body.replaceChildren();
  for (const node of status.nodes) {
    const row = body.insertRow();
    row.dataset.node = node.name;
    row.dataset.role = node.role;
    if (node.name === status.node.name) row.classList.add("self");
    if (node.behind) row.classList.add("lagging");
    const name = cell(row, "");
    const link = document.createElement("a");
    link.href = node.url + "/";
    link.textContent = node.name;
    name.appendChild(link);
    cell(row, node.role, "role-cell");
    cell(row, node.seq, "number");
    cell(row, node.behind, "number behind");
    cell(row, node.zk_server);
    cell(row, node.session);
    cell(row, node.pid, "number");
  }
}

function renderKeys(status) {
  const body = $("keys").tBodies[0];
  body.replaceChildren();
  for (const item of status.keys) {
    const row = body.insertRow();
    row.dataset.key = item.key;
    cell(row, item.key);
    cell(row, item.value);
  }
  const shown = status.keys.length < status.key_count ? `, ${status.keys.length} shown` : "";
  $("key-count").textContent = `(${status.key_count}${shown}, seq ${status.node.seq})`;
}

function render(status) {
  const me = status.node;
  $("this-node").textContent = me.name;
  $("this-role").textContent = me.role;
  $("this-role").className = "role " + me.role.replace(" ", "-");
  $("session").textContent =
    `nookeeper ${me.zk_state.toLowerCase()}: server ${me.zk_server || "–"}, ` +
    `session ${me.session || "–"} (timeout ${me.session_timeout || "–"} s), pid ${me.pid}`;
  const leader = status.leader;
  $("leader-name").textContent = leader ? leader.name : "none (electing)";
  $("leader-url").textContent = leader ? leader.url : "";
  $("leader-url").href = leader ? leader.url + "/" : "#";
  $("leader-term").textContent = leader ? `term ${hex(leader.epoch)}` : "";
  document.title = `DataKeeper ${me.name} (${me.role})`;
  renderNodes(status);
  renderKeys(status);
}

function setLive(on) {
  $("live").className = "live " + (on ? "on" : "off");
  $("live").textContent = on ? "live: updated by this node's watches"
                             : "this node does not answer; retrying…";
}

function say(text, isError) {
  $("write-result").textContent = text;
  $("write-result").className = isError ? "error" : "muted";
}

async function write(method) {
  const key = $("key-input").value;
  if (!key) {
    say("a key, please", true);
    return;
  }
  const value = $("value-input").value;
  try {
    const answer = await fetch("/keys/" + encodeURIComponent(key),
                               method === "PUT" ? { method, body: value } : { method });
    const body = await answer.json();
    const by = answer.headers.get("X-DataKeeper-Node") || body.node;
    const redirected = answer.redirected ? ` (this node redirected to the leader, ${by})` : "";
    if (answer.ok) {
      const what = method === "PUT" ? `put ${key} = ${body.value}` : `deleted ${key}`;
      say(`${what}: acknowledged by ${by} at seq ${body.seq}${redirected}`, false);
    } else {
      say(`${method} ${key}: ${answer.status} ${body.error}${redirected}`, true);
    }
  } catch (error) {
    say(`${method} ${key}: ${error}`, true);
  }
}

function start() {
  const events = new EventSource("/events");
  events.addEventListener("status", (event) => {
    render(JSON.parse(event.data));
    setLive(true);
  });
  events.onerror = () => setLive(false);
  $("write-form").addEventListener("submit", (event) => {
    event.preventDefault();
    write("PUT");
  });
  $("delete-button").addEventListener("click", () => write("DELETE"));
}

start();
