// tagwatch page: fetches the summaries from the JSON API and draws them as inline SVG (no libraries).
"use strict";

(() => {
  const API = document.body.dataset.api || "/api/v1";
  const REFRESH_MS = 30000;
  const HOURLY_DAYS = 7;
  const TOP_USERS = 10;
  const HEAT_COLUMNS = 8;
  const SVG_NS = "http://www.w3.org/2000/svg";
  // End points of the heat-map scale: white to Okabe–Ito blue.
  const HEAT_LOW = [255, 255, 255];
  const HEAT_HIGH = [0, 114, 178];

  const SOURCE_LABELS = { x: "X", mastodon: "Mastodon", bluesky: "Bluesky", sample: "Sample" };

  const $ = (selector) => document.querySelector(selector);
  const els = {
    tag: $("#tag-select"),
    source: $("#source-select"),
    tz: $("#tz-select"),
    pause: $("#pause-btn"),
    refresh: $("#refresh-btn"),
    retry: $("#retry-btn"),
    updated: $("#updated"),
    error: $("#error"),
    errorTitle: $("#error-title"),
    errorDetail: $("#error-detail"),
    errorStale: $("#error-stale"),
    loading: $("#loading"),
    empty: $("#empty"),
    charts: $("#charts"),
  };

  const state = {
    tag: "",
    source: "",
    tz: "UTC",
    by: "lang",
    paused: false,
    data: null,
    updatedAt: null,
    timer: 0,
    controller: null,
    missedRefresh: false,
  };

  // ---- formatting ----------------------------------------------------------------------------

  const fmt = (n) => Number(n).toLocaleString();
  const compact = (n) => Number(n).toLocaleString(undefined, { notation: "compact", maximumFractionDigits: 1 });
  const plural = (n, one, many) => `${fmt(n)} ${n === 1 ? one : many}`;
  const tagLabel = (tag) => (tag ? `#${tag}` : "all tags");

  // The zone of the data on screen; it lags state.tz while a new zone is loading.
  const zone = () => (state.data ? state.data.tz : state.tz);

  function dateFormat(options) {
    return new Intl.DateTimeFormat(undefined, Object.assign({ timeZone: zone() }, options));
  }

  function hourInZone(date) {
    const parts = new Intl.DateTimeFormat("en-GB", {
      timeZone: zone(),
      hour: "2-digit",
      hourCycle: "h23",
    }).formatToParts(date);
    const hour = parts.find((p) => p.type === "hour");
    return hour ? Number(hour.value) : date.getUTCHours();
  }

  const displayNameCache = {};
  function displayName(type, code) {
    if (type === "language" && code === "und") return "undetermined"; // X's code for no detected language
    try {
      if (typeof Intl.DisplayNames !== "function") return code;
      if (!displayNameCache[type]) {
        displayNameCache[type] = new Intl.DisplayNames(undefined, { type, fallback: "code" });
      }
      return displayNameCache[type].of(type === "region" ? code.toUpperCase() : code) || code;
    } catch (_err) {
      return code;
    }
  }

  function relativeTime(date) {
    const seconds = (date.getTime() - Date.now()) / 1000;
    const rtf = new Intl.RelativeTimeFormat(undefined, { numeric: "auto" });
    const units = [["day", 86400], ["hour", 3600], ["minute", 60]];
    for (const [unit, size] of units) {
      if (Math.abs(seconds) >= size) return rtf.format(Math.round(seconds / size), unit);
    }
    return rtf.format(Math.round(seconds), "second");
  }

  function parseDate(value) {
    const date = value ? new Date(value) : null;
    return date && !Number.isNaN(date.getTime()) ? date : null;
  }

  function truncate(text, max) {
    return text.length > max ? `${text.slice(0, max - 1)}…` : text;
  }

  // ---- API -----------------------------------------------------------------------------------

  class ApiError extends Error {
    constructor(message, info) {
      super(message);
      this.name = "ApiError";
      Object.assign(this, { status: 0, detail: "", invalid: [], path: "" }, info);
    }
  }

  async function getJSON(path, params, signal) {
    const query = new URLSearchParams();
    for (const [key, value] of Object.entries(params || {})) {
      if (value !== "" && value !== null && value !== undefined) query.set(key, value);
    }
    const qs = query.toString();
    const url = `${API}${path}${qs ? `?${qs}` : ""}`;
    let response;
    try {
      response = await fetch(url, { headers: { Accept: "application/json" }, signal, cache: "no-store" });
    } catch (err) {
      if (err.name === "AbortError") throw err;
      throw new ApiError("Could not reach the tagwatch API.", { detail: err.message, path });
    }
    let body = null;
    try {
      body = await response.json();
    } catch (err) {
      if (err.name === "AbortError") throw err;
    }
    if (!response.ok) {
      const problem = body && typeof body === "object" ? body : {};
      throw new ApiError(problem.title || `The API answered ${response.status}.`, {
        status: response.status,
        detail: problem.detail || "",
        invalid: Array.isArray(problem.invalid_params) ? problem.invalid_params : [],
        path,
      });
    }
    if (!body || typeof body !== "object" || !("data" in body)) {
      throw new ApiError("The API sent a response this page does not understand.", { path });
    }
    return body;
  }

  function sinceParam() {
    const since = new Date(Date.now() - HOURLY_DAYS * 86400000);
    since.setUTCMinutes(0, 0, 0);
    return since.toISOString().replace(".000Z", "Z");
  }

  async function load() {
    clearTimeout(state.timer);
    if (state.controller) state.controller.abort();
    const controller = new AbortController();
    state.controller = controller;
    const { signal } = controller;
    const tag = state.tag;
    const source = state.source;
    const tz = state.tz;
    try {
      // /tags unfiltered: its per-source figures list the sources that fed the page (the source select)
      const [tags, users, hourly, hourOfDay, byLang, byCountry] = await Promise.all([
        getJSON("/tags", {}, signal),
        getJSON("/users/top", { limit: TOP_USERS, tag, source }, signal),
        getJSON("/posts/by-hour", { tag, source, since: sinceParam(), tz }, signal),
        getJSON("/posts/by-hour-of-day", { tag, source, tz }, signal),
        getJSON("/tags/breakdown", { by: "lang", tag, source }, signal),
        getJSON("/tags/breakdown", { by: "country", tag, source }, signal),
      ]);
      state.data = { tag, source, tz, tags, users, hourly, hourOfDay, byLang, byCountry };
      state.updatedAt = new Date();
      state.error = null;
      render();
    } catch (err) {
      if (err.name === "AbortError") return;
      if (state.tag && err.status === 400 && (err.invalid || []).some((p) => p.name === "tag")) {
        // A stale ?tag= from a bookmark: fall back to all tags instead of showing an error.
        state.tag = "";
        els.tag.value = "";
        saveUrl();
        state.controller = null;
        load();
        return;
      }
      if (state.source && err.status === 400 && (err.invalid || []).some((p) => p.name === "source")) {
        // A stale ?source= from a bookmark: fall back to every source.
        state.source = "";
        els.source.value = "";
        saveUrl();
        state.controller = null;
        load();
        return;
      }
      state.error = err;
      renderError();
    } finally {
      if (state.controller === controller) {
        state.controller = null;
        schedule();
      }
    }
  }

  function schedule() {
    clearTimeout(state.timer);
    if (!state.paused) state.timer = setTimeout(tick, REFRESH_MS);
  }

  function tick() {
    if (document.hidden) {
      state.missedRefresh = true;
      return;
    }
    load();
  }

  // ---- page states ---------------------------------------------------------------------------

  // A tag's figures for the chosen source (its row of `sources`), or over every source.
  function scoped(row) {
    const source = state.data && state.data.source;
    if (!source || !Array.isArray(row.sources)) return row;
    const part = row.sources.find((s) => s.source === source);
    return { tag: row.tag, posts: 0, newest_post_at: null, last_run: null, ...(part || {}) };
  }

  function render() {
    const d = state.data;
    const tagRows = d.tags.data.map(scoped);
    fillSourceSelect(d.tags);
    fillTagSelect(tagRows);
    renderUpdated();
    els.loading.hidden = true;
    els.error.hidden = true;
    const totalPosts = tagRows.reduce((sum, t) => sum + (t.posts || 0), 0);
    const hasPosts = d.hourly.data.some((r) => r.count > 0) || d.users.data.length > 0;
    const empty = totalPosts === 0 && !hasPosts;
    els.empty.hidden = !empty;
    els.charts.hidden = empty;
    if (!empty) renderCharts();
  }

  function renderCharts() {
    const d = state.data;
    renderHourly(d.hourly.data);
    renderUsers(d.users.data);
    renderHourOfDay(d.hourOfDay.data);
    renderHeat();
    renderTags(d.tags.data.map(scoped));
  }

  function renderError() {
    const err = state.error;
    els.loading.hidden = true;
    els.error.hidden = false;
    els.errorTitle.textContent = `Could not load the data: ${err.message}`;
    const bits = [];
    if (err.status) bits.push(`HTTP ${err.status}`);
    if (err.path) bits.push(`GET ${API}${err.path}`);
    if (err.detail) bits.push(err.detail);
    for (const p of err.invalid || []) bits.push(`${p.name}: ${p.reason}`);
    els.errorDetail.textContent = bits.join(" · ");
    const retry = state.paused ? "Auto-refresh is paused." : "The page tries again in 30 s.";
    els.errorStale.textContent = state.updatedAt
      ? `The charts below still show the data from ${timeText(state.updatedAt)}. ${retry}`
      : retry;
    renderUpdated();
  }

  function timeText(date) {
    return dateFormat({ hour: "2-digit", minute: "2-digit", second: "2-digit", timeZoneName: "short" }).format(date);
  }

  function renderUpdated() {
    const parts = [];
    if (state.updatedAt) {
      const time = document.createElement("time");
      time.dateTime = state.updatedAt.toISOString();
      time.textContent = timeText(state.updatedAt);
      parts.push("Updated ", time);
    } else {
      parts.push(state.error ? "Not loaded yet" : "Loading…");
    }
    parts.push(state.paused ? " · auto-refresh paused" : " · refreshes every 30 s");
    els.updated.replaceChildren(...parts);
    els.updated.classList.toggle("paused", state.paused);
  }

  // The sources that fed the page (stored posts) and the configured ones.
  function fillSourceSelect(tagsBody) {
    const names = new Set((tagsBody.meta && tagsBody.meta.sources) || []);
    for (const row of tagsBody.data) {
      for (const part of row.sources || []) if (part.posts > 0) names.add(part.source);
    }
    const wanted = state.source;
    const options = [new Option("All sources", "")];
    for (const name of names) options.push(new Option(SOURCE_LABELS[name] || name, name));
    els.source.replaceChildren(...options);
    const known = names.has(wanted);
    els.source.value = known ? wanted : "";
    if (!known && wanted && names.size) {
      state.source = "";
      saveUrl();
    }
  }

  function fillTagSelect(tags) {
    const wanted = state.tag;
    const options = [new Option("All tags", "")];
    for (const t of tags) options.push(new Option(`#${t.tag} (${fmt(t.posts)})`, t.tag));
    els.tag.replaceChildren(...options);
    const known = tags.some((t) => t.tag === wanted);
    els.tag.value = known ? wanted : "";
    if (!known && wanted && tags.length) {
      state.tag = "";
      saveUrl();
    }
  }

  function chartEmpty(box, text) {
    const p = document.createElement("p");
    p.className = "chart-empty";
    p.textContent = text;
    box.replaceChildren(p);
  }

  // ---- SVG helpers ---------------------------------------------------------------------------

  function svgEl(name, attrs, text) {
    const el = document.createElementNS(SVG_NS, name);
    for (const [key, value] of Object.entries(attrs || {})) el.setAttribute(key, String(value));
    if (text !== undefined) el.textContent = text;
    return el;
  }

  function makeSvg(box, width, height, title, desc) {
    const id = box.id;
    const svg = svgEl("svg", {
      class: "chart-svg",
      width,
      height,
      viewBox: `0 0 ${width} ${height}`,
      role: "img",
      "aria-labelledby": `${id}-title ${id}-desc`,
    });
    svg.append(svgEl("title", { id: `${id}-title` }, title), svgEl("desc", { id: `${id}-desc` }, desc));
    box.replaceChildren(svg);
    return svg;
  }

  function niceTicks(max, count) {
    if (!(max > 0)) return [0, 1];
    const raw = max / count;
    const magnitude = 10 ** Math.floor(Math.log10(raw));
    const step = Math.max(1, [1, 2, 5, 10].map((m) => m * magnitude).find((s) => s >= raw));
    const ticks = [];
    for (let v = 0; v < max + step; v += step) ticks.push(v);
    return ticks;
  }

  // Gridlines, y tick labels and both axis titles for a chart with vertical values.
  function verticalFrame(svg, box, m, ticks, xTitle, yTitle) {
    const top = ticks[ticks.length - 1];
    const y = (v) => box.bottom - (v / top) * (box.bottom - m.top);
    for (const t of ticks) {
      svg.append(svgEl("line", { class: "gridline", x1: m.left, x2: box.right, y1: y(t), y2: y(t) }));
      svg.append(svgEl("text", { class: "tick", x: m.left - 8, y: y(t), dy: "0.35em", "text-anchor": "end" }, fmt(t)));
    }
    svg.append(svgEl("line", { class: "baseline", x1: m.left, x2: box.right, y1: box.bottom, y2: box.bottom }));
    svg.append(
      svgEl("text", { class: "axis-title", x: (m.left + box.right) / 2, y: box.height - 6, "text-anchor": "middle" }, xTitle),
    );
    const midY = (m.top + box.bottom) / 2;
    svg.append(
      svgEl(
        "text",
        { class: "axis-title", x: 14, y: midY, "text-anchor": "middle", transform: `rotate(-90 14 ${midY})` },
        yTitle,
      ),
    );
    return y;
  }

  function chartWidth(el) {
    return Math.max(280, Math.floor(el.clientWidth || 600));
  }

  // ---- charts --------------------------------------------------------------------------------

  function renderHourly(rows) {
    const el = $("#hourly-chart");
    const tz = state.data.tz;
    $("#hourly-sub").textContent = `Hourly post counts for ${tagLabel(state.data.tag)} in ${tz}, including hours without posts.`;
    if (!rows.length || !rows.some((r) => r.count > 0)) {
      chartEmpty(el, `No posts for ${tagLabel(state.data.tag)} in the last ${HOURLY_DAYS} days.`);
      return;
    }
    const points = rows.map((r) => ({ date: new Date(r.hour), count: r.count }));
    const width = chartWidth(el);
    const height = 280;
    const m = { top: 14, right: 18, bottom: 50, left: 62 };
    const box = { right: width - m.right, bottom: height - m.bottom, height };
    const max = Math.max(...points.map((p) => p.count));
    const total = points.reduce((s, p) => s + p.count, 0);
    const peak = points.find((p) => p.count === max);
    const long = dateFormat({ weekday: "short", day: "numeric", month: "short", hour: "2-digit", minute: "2-digit" });
    const desc =
      `Line chart of posts per hour for ${tagLabel(state.data.tag)} from ${long.format(points[0].date)} ` +
      `to ${long.format(points[points.length - 1].date)} (${tz}): ${plural(total, "post", "posts")} in ` +
      `${plural(points.length, "hour", "hours")}; the busiest hour was ${long.format(peak.date)} ` +
      `with ${plural(max, "post", "posts")}.`;
    const svg = makeSvg(el, width, height, `Posts per hour, last ${HOURLY_DAYS} days (${tz})`, desc);
    const ticks = niceTicks(max, 5);
    const y = verticalFrame(svg, box, m, ticks, `Date and hour (${tz})`, "Posts per hour");
    const step = points.length > 1 ? (box.right - m.left) / (points.length - 1) : 0;
    const x = (i) => (points.length > 1 ? m.left + i * step : (m.left + box.right) / 2);

    drawDayTicks(svg, points, x, box, m);

    const coords = points.map((p, i) => `${x(i).toFixed(1)},${y(p.count).toFixed(1)}`);
    const area = `M${x(0).toFixed(1)},${box.bottom} L${coords.join(" L")} L${x(points.length - 1).toFixed(1)},${box.bottom} Z`;
    svg.append(svgEl("path", { class: "area", d: area }));
    svg.append(svgEl("polyline", { class: "line", points: coords.join(" ") }));
    const peakIndex = points.indexOf(peak);
    svg.append(svgEl("circle", { class: "peak", cx: x(peakIndex), cy: y(max), r: 4 }));

    const hits = svgEl("g", { class: "hits" });
    const hitWidth = Math.max(step, 2);
    points.forEach((p, i) => {
      const hit = svgEl("rect", { class: "hit", x: x(i) - hitWidth / 2, y: m.top, width: hitWidth, height: box.bottom - m.top });
      hit.append(svgEl("title", {}, `${long.format(p.date)}: ${plural(p.count, "post", "posts")}`));
      hits.append(hit);
    });
    svg.append(hits);
  }

  // Label day boundaries (local midnight in the chosen zone). The labels are measured once drawn, then only
  // every n-th is kept, with the smallest n for which no two kept labels touch and none leaves the chart (the
  // outermost are anchored inwards): a narrow screen shows fewer dates, evenly spaced, never overlapping.
  function drawDayTicks(svg, points, x, box, m) {
    const spanHours = points.length;
    const marks = points
      .map((p, i) => ({ i, hour: hourInZone(p.date), date: p.date }))
      .filter((p) => (spanHours > 48 ? p.hour === 0 : p.hour % 6 === 0));
    if (!marks.length) return;
    const dayFmt = dateFormat({ weekday: "short", day: "numeric", month: "short" });
    const hourFmt = dateFormat({ hour: "2-digit", minute: "2-digit" });
    const labels = marks.map((mark) => {
      const px = x(mark.i);
      const anchor = px > box.right - 40 ? "end" : px < m.left + 30 ? "start" : "middle";
      const text = mark.hour === 0 ? dayFmt.format(mark.date) : hourFmt.format(mark.date);
      return svgEl("text", { class: "tick x-tick", x: px, y: box.bottom + 18, "text-anchor": anchor }, text);
    });
    svg.append(...labels);
    const bounds = labels.map((label) => label.getBBox());
    const fits = (every) => {
      let right = -Infinity;
      for (let n = 0; n < bounds.length; n += every) {
        const b = bounds[n];
        if (b.x < right + 8 || b.x < 0 || b.x + b.width > box.right + m.right) return false;
        right = b.x + b.width;
      }
      return true;
    };
    let every = 1;
    while (every < labels.length && !fits(every)) every += 1;
    const keep = fits(every); // false only when even one label is wider than the chart
    labels.forEach((label, n) => {
      if (!keep || n % every !== 0) {
        label.remove();
        return;
      }
      const px = x(marks[n].i);
      label.before(
        svgEl("line", { class: "day-line", x1: px, x2: px, y1: m.top, y2: box.bottom }),
        svgEl("line", { class: "baseline", x1: px, x2: px, y1: box.bottom, y2: box.bottom + 5 }),
      );
    });
  }

  // Bars are followers because the API ranks top users by followers; posts in scope ride along as text.
  function renderUsers(rows) {
    const el = $("#users-chart");
    const scope = tagLabel(state.data.tag);
    if (!rows.length) {
      chartEmpty(el, `No users with posts for ${scope} yet.`);
      return;
    }
    const width = chartWidth(el);
    const narrow = width < 480;
    const rowHeight = 30;
    const m = { top: 6, right: narrow ? 64 : 132, bottom: 46, left: 150 };
    const height = m.top + rows.length * rowHeight + m.bottom;
    const bottom = height - m.bottom;
    const followers = (r) => r.followers || 0;
    const max = Math.max(...rows.map(followers));
    const ticks = niceTicks(max, narrow ? 3 : 5);
    const top = ticks[ticks.length - 1];
    const x = (v) => m.left + (v / top) * (width - m.left - m.right);
    const desc =
      `Horizontal bar chart of the ${rows.length} users with the most followers among the authors of ${scope}: ` +
      rows.map((r) => `@${r.username} ${plural(followers(r), "follower", "followers")} and ${plural(r.posts, "post", "posts")}`).join("; ") +
      ".";
    const svg = makeSvg(el, width, height, `Top ${rows.length} users by followers (${scope})`, desc);
    for (const t of ticks) {
      svg.append(svgEl("line", { class: "gridline", x1: x(t), x2: x(t), y1: m.top, y2: bottom }));
      svg.append(svgEl("text", { class: "tick", x: x(t), y: bottom + 16, "text-anchor": "middle" }, compact(t)));
    }
    rows.forEach((r, i) => {
      const y = m.top + i * rowHeight + 5;
      const barHeight = rowHeight - 10;
      const g = svgEl("g", { class: "bar-row" });
      const tags = (r.tags || []).map((t) => `#${t}`).join(", ");
      g.append(
        svgEl(
          "title",
          {},
          `${r.name || r.username} (@${r.username}): ${plural(followers(r), "follower", "followers")}, ` +
            `${plural(r.posts, "post", "posts")} in ${scope}${tags ? `; tags ${tags}` : ""}`,
        ),
      );
      g.append(svgEl("rect", { class: "hit", x: 0, y: y - 5, width, height: rowHeight }));
      g.append(
        svgEl("text", { class: "label", x: m.left - 10, y: y + barHeight / 2, dy: "0.35em", "text-anchor": "end" }, truncate(`@${r.username}`, 21)),
      );
      g.append(svgEl("rect", { class: "bar bar-users", x: m.left, y, width: Math.max(2, x(followers(r)) - m.left), height: barHeight, rx: 2 }));
      const value = svgEl("text", { class: "value", x: x(followers(r)) + 6, y: y + barHeight / 2, dy: "0.35em" }, fmt(followers(r)));
      if (!narrow) value.append(svgEl("tspan", { class: "tick" }, ` · ${plural(r.posts, "post", "posts")}`));
      g.append(value);
      svg.append(g);
    });
    svg.append(svgEl("line", { class: "baseline", x1: m.left, x2: m.left, y1: m.top, y2: bottom }));
    svg.append(svgEl("text", { class: "axis-title", x: (m.left + width - m.right) / 2, y: height - 6, "text-anchor": "middle" }, "Followers"));
    const midY = (m.top + bottom) / 2;
    svg.append(svgEl("text", { class: "axis-title", x: 14, y: midY, "text-anchor": "middle", transform: `rotate(-90 14 ${midY})` }, "User"));
  }

  function renderHourOfDay(rows) {
    const el = $("#hod-chart");
    const tz = state.data.tz;
    $("#hod-sub").textContent = `Posts for ${tagLabel(state.data.tag)} grouped by the hour of day they were posted, in ${tz}.`;
    const counts = new Array(24).fill(0);
    for (const r of rows) if (r.hour >= 0 && r.hour < 24) counts[r.hour] = r.count;
    if (!counts.some((c) => c > 0)) {
      chartEmpty(el, `No posts for ${tagLabel(state.data.tag)} yet.`);
      return;
    }
    const width = chartWidth(el);
    const height = 300;
    const m = { top: 14, right: 12, bottom: 50, left: 62 };
    const box = { right: width - m.right, bottom: height - m.bottom, height };
    const max = Math.max(...counts);
    const busiest = counts.indexOf(max);
    const hourName = (h) => `${String(h).padStart(2, "0")}:00`;
    const desc =
      `Bar chart of posts by hour of day (${tz}) for ${tagLabel(state.data.tag)}; busiest hour ${hourName(busiest)} ` +
      `with ${plural(max, "post", "posts")}. ` +
      counts.map((c, h) => `${hourName(h)}: ${fmt(c)}`).join(", ") + ".";
    const svg = makeSvg(el, width, height, `Posts by hour of day (${tz})`, desc);
    const y = verticalFrame(svg, box, m, niceTicks(max, 5), `Hour of day (${tz})`, "Posts");
    const slot = (box.right - m.left) / 24;
    const labelEvery = slot >= 24 ? 1 : slot >= 12 ? 2 : 3;
    counts.forEach((c, h) => {
      const g = svgEl("g", { class: "bar-col" });
      g.append(svgEl("title", {}, `${hourName(h)}–${String(h).padStart(2, "0")}:59: ${plural(c, "post", "posts")}`));
      g.append(svgEl("rect", { class: "hit", x: m.left + h * slot, y: m.top, width: slot, height: box.bottom - m.top }));
      const barWidth = Math.max(2, slot * 0.72);
      g.append(
        svgEl("rect", {
          class: "bar bar-hod",
          x: m.left + h * slot + (slot - barWidth) / 2,
          y: y(c),
          width: barWidth,
          height: Math.max(0, box.bottom - y(c)),
          rx: 1.5,
        }),
      );
      if (h % labelEvery === 0) {
        g.append(svgEl("text", { class: "tick", x: m.left + (h + 0.5) * slot, y: box.bottom + 16, "text-anchor": "middle" }, String(h)));
      }
      svg.append(g);
    });
  }

  function heatColour(share) {
    const mix = HEAT_LOW.map((lo, i) => Math.round(lo + (HEAT_HIGH[i] - lo) * share));
    const lum = mix
      .map((v) => v / 255)
      .map((v) => (v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4))
      .reduce((s, v, i) => s + v * [0.2126, 0.7152, 0.0722][i], 0);
    // Pick whichever text colour contrasts more; the worse case of the better one is still > 4.5:1.
    const text = (lum + 0.05) / 0.05 >= 1.05 / (lum + 0.05) ? "#000000" : "#ffffff";
    return { background: `rgb(${mix.join(" ")})`, text };
  }

  function renderHeat() {
    const d = state.data;
    const by = state.by;
    const source = by === "lang" ? d.byLang : d.byCountry;
    const rows = source.data;
    const totals = (source.meta && source.meta.totals) || {};
    const dimName = by === "lang" ? "language" : "country";
    const el = $("#heat-chart");
    $("#heat-dim").textContent = dimName;
    $("#heat-sub").textContent =
      `Posts per tag and ${dimName} (top ${HEAT_COLUMNS}, the rest as “other”); darker cells hold more posts.`;
    if (!rows.length) {
      chartEmpty(el, `No posts for ${tagLabel(d.tag)} yet.`);
      return;
    }
    const key = (r) => (r[by] === null || r[by] === undefined || r[by] === "" ? null : r[by]);
    const byKey = new Map();
    for (const r of rows) if (key(r) !== null) byKey.set(key(r), (byKey.get(key(r)) || 0) + r.count);
    const topKeys = [...byKey.entries()].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1)).slice(0, HEAT_COLUMNS).map((e) => e[0]);
    const hasOther = byKey.size > topKeys.length;
    const hasUnknown = rows.some((r) => key(r) === null);
    const columns = topKeys.map((k) => ({ id: k, label: displayName(by === "lang" ? "language" : "region", k), title: k }));
    if (hasOther) columns.push({ id: "\u0000other", label: "other", title: `every other ${dimName}` });
    if (hasUnknown) columns.push({ id: "\u0000unknown", label: "unknown", title: `${dimName} not known` });

    const tagOrder = [];
    const cells = new Map();
    for (const r of rows) {
      if (!cells.has(r.tag)) {
        cells.set(r.tag, new Map());
        tagOrder.push(r.tag);
      }
      const k = key(r);
      const col = k === null ? "\u0000unknown" : topKeys.includes(k) ? k : "\u0000other";
      const m = cells.get(r.tag);
      m.set(col, (m.get(col) || 0) + r.count);
    }
    let max = 0;
    for (const m of cells.values()) for (const v of m.values()) max = Math.max(max, v);

    const table = document.createElement("table");
    table.className = "heat";
    table.id = "heat-table";
    const caption = document.createElement("caption");
    caption.className = "sr-only";
    caption.textContent = `Posts per tag (rows) and ${dimName} (columns) for ${tagLabel(d.tag)}; last column is the tag total.`;
    table.append(caption);
    const head = table.createTHead().insertRow();
    head.append(th("Tag", "col"));
    for (const c of columns) {
      const cell = th(c.label, "col");
      cell.title = c.title;
      head.append(cell);
    }
    head.append(th("Total", "col"));
    const body = table.createTBody();
    for (const tag of tagOrder) {
      const tr = body.insertRow();
      tr.append(th(`#${tag}`, "row"));
      const counts = cells.get(tag);
      const rowTotal = [...counts.values()].reduce((s, v) => s + v, 0);
      const total = typeof totals[tag] === "number" ? totals[tag] : rowTotal;
      for (const c of columns) {
        const v = counts.get(c.id) || 0;
        const td = tr.insertCell();
        td.className = v ? "cell" : "cell zero";
        td.textContent = fmt(v);
        const share = total ? Math.round((v / total) * 100) : 0;
        td.title = `#${tag}, ${c.label}: ${plural(v, "post", "posts")} (${share}% of #${tag})`;
        if (v) {
          const colour = heatColour(max ? v / max : 0);
          td.style.background = colour.background;
          td.style.color = colour.text;
        }
      }
      const tdTotal = tr.insertCell();
      tdTotal.className = "total";
      tdTotal.textContent = fmt(total);
    }
    const legend = document.createElement("p");
    legend.className = "legend";
    legend.setAttribute("aria-hidden", "true");
    const swatch = document.createElement("span");
    swatch.className = "swatch";
    legend.append("0", swatch, `${fmt(max)} posts`);
    el.replaceChildren(table, legend);
  }

  function th(text, scope, className) {
    const cell = document.createElement("th");
    cell.scope = scope;
    if (className) cell.className = className;
    cell.textContent = text;
    return cell;
  }

  function renderTags(tags) {
    const el = $("#tags-table");
    if (!tags.length) {
      chartEmpty(el, "No tags configured.");
      return;
    }
    const full = dateFormat({ dateStyle: "medium", timeStyle: "short" });
    const table = document.createElement("table");
    table.id = "tags-status";
    const caption = document.createElement("caption");
    caption.className = "sr-only";
    caption.textContent = "Tracked tags with stored posts, newest post and last collection run.";
    table.append(caption);
    const head = table.createTHead().insertRow();
    head.append(th("Tag", "col"), th("Posts", "col"), th("Newest post", "col", "text"), th("Last run", "col", "text"));
    const body = table.createTBody();
    for (const t of tags) {
      const tr = body.insertRow();
      tr.append(th(`#${t.tag}`, "row"));
      tr.insertCell().textContent = fmt(t.posts || 0);
      const newest = tr.insertCell();
      newest.className = "text";
      const date = parseDate(t.newest_post_at);
      if (date) {
        const time = document.createElement("time");
        time.dateTime = t.newest_post_at;
        time.title = full.format(date);
        time.textContent = relativeTime(date);
        newest.append(time);
      } else {
        newest.textContent = "—";
      }
      const run = tr.insertCell();
      run.className = "text";
      run.append(runBadge(t.last_run, full));
    }
    el.replaceChildren(table);
  }

  function runBadge(run, full) {
    const badge = document.createElement("span");
    if (!run) {
      badge.className = "badge badge-other";
      badge.textContent = "not run yet";
      return badge;
    }
    const ok = run.status === "success";
    const failed = run.status === "failed" || run.status === "failure";
    badge.className = `badge ${ok ? "badge-ok" : failed ? "badge-bad" : "badge-other"}`;
    badge.textContent = `${ok ? "✓ " : failed ? "✗ " : ""}${run.status}`;
    const date = parseDate(run.finished_at);
    if (date) {
      badge.title = `Run ${run.id}: ${run.status}, finished ${full.format(date)}`;
      badge.textContent += ` · ${relativeTime(date)}`;
    } else {
      badge.title = `Run ${run.id}: ${run.status}`;
    }
    return badge;
  }

  // ---- controls ------------------------------------------------------------------------------

  function saveUrl() {
    const params = new URLSearchParams();
    if (state.tag) params.set("tag", state.tag);
    if (state.source) params.set("source", state.source);
    if (state.tz !== "UTC") params.set("tz", state.tz);
    if (state.by !== "lang") params.set("by", state.by);
    const qs = params.toString();
    history.replaceState(null, "", `${location.pathname}${qs ? `?${qs}` : ""}`);
  }

  function setupControls() {
    const browserZone = Intl.DateTimeFormat().resolvedOptions().timeZone;
    if (browserZone && browserZone !== "UTC" && browserZone !== "Etc/UTC") {
      els.tz.append(new Option(`Local time (${browserZone})`, browserZone));
    }
    const params = new URLSearchParams(location.search);
    state.tag = params.get("tag") || "";
    if (state.tag) els.tag.append(new Option(`#${state.tag}`, state.tag));
    els.tag.value = state.tag;
    state.source = params.get("source") || "";
    if (state.source) els.source.append(new Option(SOURCE_LABELS[state.source] || state.source, state.source));
    els.source.value = state.source;
    const tz = params.get("tz");
    if (tz && [...els.tz.options].some((o) => o.value === tz)) state.tz = tz;
    els.tz.value = state.tz;
    state.by = params.get("by") === "country" ? "country" : "lang";
    for (const radio of document.querySelectorAll('input[name="heat-by"]')) radio.checked = radio.value === state.by;

    els.tag.addEventListener("change", () => {
      state.tag = els.tag.value;
      saveUrl();
      load();
    });
    els.source.addEventListener("change", () => {
      state.source = els.source.value;
      saveUrl();
      load();
    });
    els.tz.addEventListener("change", () => {
      state.tz = els.tz.value;
      saveUrl();
      load();
    });
    $("#heat-toggle").addEventListener("change", (event) => {
      state.by = event.target.value;
      saveUrl();
      if (state.data && !els.charts.hidden) renderHeat();
    });
    els.pause.addEventListener("click", () => {
      state.paused = !state.paused;
      els.pause.setAttribute("aria-pressed", String(state.paused));
      els.pause.textContent = state.paused ? "Resume auto-refresh" : "Pause auto-refresh";
      renderUpdated();
      if (state.paused) clearTimeout(state.timer);
      else load();
    });
    els.refresh.addEventListener("click", load);
    els.retry.addEventListener("click", load);
    $("#controls").addEventListener("submit", (event) => event.preventDefault());
    document.addEventListener("visibilitychange", () => {
      if (!document.hidden && state.missedRefresh) {
        state.missedRefresh = false;
        load();
      }
    });
    let lastWidth = window.innerWidth;
    let frame = 0;
    window.addEventListener("resize", () => {
      cancelAnimationFrame(frame);
      frame = requestAnimationFrame(() => {
        if (window.innerWidth === lastWidth) return;
        lastWidth = window.innerWidth;
        if (state.data && !els.charts.hidden) renderCharts();
      });
    });
  }

  setupControls();
  load();
})();
