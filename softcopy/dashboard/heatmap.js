// The coverage heatmap in the browser (an anywidget ES module; no imports, no CDN).
// Python sends `data` (softcopy.views.calendar.heatmap_data): columns of days, rows of
// state codes. This draws them as one SVG and sends back what the user does:
//   {event: "click", row, col}              a cell tapped or clicked
//   {event: "select", rows: [a, b], cols: [a, b]}   a drag, or a click then shift-click
// It keeps `expanded` (sources whose stages show) itself; `selection` and `focus` come from
// Python and are only drawn here.

const LABEL_W = 150;
const HEAD_H = 30;
const SOURCE_H = 18;
const STAGE_H = 13;
const NO_DATA = "#f6f8fa";
const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

function esc(text) {
  return String(text).replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]);
}

function visibleRows(data, expanded, problemsOnly) {
  const problems = new Set(data.problems);
  const hasProblem = (row) => [...row.codes].some((c) => problems.has(c));
  const out = [];
  for (const [r, row] of data.rows.entries()) {
    if (row.stage !== null) continue;
    if (problemsOnly && !hasProblem(row)) continue;
    out.push({ r, row, h: SOURCE_H });
    if (!expanded.includes(row.source)) continue;
    for (const [s, stageRow] of data.rows.entries()) {
      if (stageRow.source === row.source && stageRow.stage !== null) {
        if (problemsOnly && !hasProblem(stageRow)) continue;
        out.push({ r: s, row: stageRow, h: STAGE_H });
      }
    }
  }
  return out;
}

function describeCounts(data, counts) {
  if (!counts) return "no data";
  return counts
    .split(",")
    .map((part) => `${Number(part.slice(1)).toLocaleString()} ${data.states[part[0]][0]}`)
    .join(", ");
}

function axis(data, cw, width) {
  const parts = [];
  const years = []; // [column, year] where a year begins
  let lastMonth = null;
  let lastLabelX = -1e9;
  for (const [c, [first]] of data.columns.entries()) {
    const [y, m] = first.split("-").map(Number);
    const x = LABEL_W + c * cw;
    if (!years.length || years[years.length - 1][1] !== y) years.push([c, y]);
    if (data.unit !== "month" && m !== lastMonth) {
      parts.push(`<line x1="${x}" y1="${HEAD_H - 6}" x2="${x}" y2="${HEAD_H}" stroke="#57606a"/>`);
      if (x - lastLabelX >= 26 && x + 20 <= width) {
        parts.push(`<text x="${x + 1}" y="${HEAD_H - 8}">${MONTHS[m - 1]}</text>`);
        lastLabelX = x;
      }
      lastMonth = m;
    }
  }
  for (const [n, [c, y]] of years.entries()) {
    const x = LABEL_W + c * cw;
    const next = n + 1 < years.length ? LABEL_W + years[n + 1][0] * cw : width;
    parts.push(`<line x1="${x}" y1="2" x2="${x}" y2="${HEAD_H}" stroke="#8c959f"/>`);
    if (next - x >= 30) parts.push(`<text x="${x + 2}" y="11" font-weight="bold">${y}</text>`);
  }
  return parts;
}

function draw(model, scroller, state) {
  const data = model.get("data");
  if (!data || !data.rows || !data.columns.length) {
    scroller.innerHTML = '<div class="sc-hm-empty">(nothing to draw)</div>';
    state.layout = null;
    return;
  }
  const expanded = model.get("expanded");
  const problemsOnly = model.get("problems_only");
  const rows = visibleRows(data, expanded, problemsOnly);
  const avail = Math.max(scroller.clientWidth || 900, 300);
  const n = data.columns.length;
  const cw = Math.max(3, Math.min(18, Math.floor((avail - LABEL_W - 6) / n)));
  const gap = cw >= 6 ? 1 : 0;
  const width = LABEL_W + n * cw + 6;
  const ys = [];
  let y = HEAD_H;
  for (const v of rows) {
    ys.push(y);
    y += v.h;
  }
  const height = y + 4;
  const problems = new Set(data.problems);
  const parts = [
    `<svg class="sc-hm-svg" xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" ` +
      `data-problems-only="${problemsOnly}" data-unit="${data.unit}" font-family="sans-serif" font-size="10">`,
    ...axis(data, cw, width),
  ];
  const rowAt = new Map();
  for (const [i, v] of rows.entries()) {
    rowAt.set(v.r, i);
    const top = ys[i];
    const isSource = v.row.stage === null;
    const open = expanded.includes(v.row.source);
    const label = isSource ? `${open ? "▾" : "▸"} ${v.row.source}` : `${v.row.stage}`;
    parts.push(
      `<text class="sc-hm-label${isSource ? " sc-hm-source" : ""}" data-source="${esc(v.row.source)}" ` +
        `x="${isSource ? 4 : 22}" y="${top + v.h - 5}"${isSource ? ' font-weight="bold"' : ""}>` +
        `<title>${esc(isSource ? `${v.row.source}: click to ${open ? "hide" : "show"} its stages` : `${v.row.source} · ${v.row.stage}`)}</title>${esc(label)}</text>`,
    );
    const codes = v.row.codes;
    for (let c = 0; c < n; c++) {
      const code = codes[c];
      let fill = code === " " ? NO_DATA : data.states[code][1];
      let dim = "";
      if (problemsOnly && code !== " " && !problems.has(code)) dim = ' fill-opacity="0.18"';
      parts.push(
        `<rect class="sc-hm-cell" data-r="${v.r}" data-c="${c}" data-source="${esc(v.row.source)}"` +
          `${isSource ? "" : ` data-stage="${v.row.stage}"`} data-first="${data.columns[c][0]}" data-code="${code}" ` +
          `x="${LABEL_W + c * cw}" y="${top}" width="${cw - gap}" height="${v.h - 2}" fill="${fill}"${dim}/>`,
      );
    }
  }
  const outline = (list, css, stroke, dash) => {
    for (const [r, c] of list) {
      const i = rowAt.get(r);
      if (i === undefined) continue;
      parts.push(
        `<rect class="${css}" x="${LABEL_W + c * cw - 0.5}" y="${ys[i] - 0.5}" width="${Math.max(cw, 3)}" ` +
          `height="${rows[i].h - 1}" fill="none" stroke="${stroke}" stroke-width="1.5"${dash} pointer-events="none"/>`,
      );
    }
  };
  outline(data.marks, "sc-hm-mark", "#24292f", "");
  outline(data.bad, "sc-hm-bad", "#cf222e", ' stroke-dasharray="2,1"');
  parts.push(`<g class="sc-hm-overlay" pointer-events="none"></g></svg>`);
  scroller.innerHTML = parts.join("");
  state.layout = { data, rows, ys, cw, rowAt };
  drawOverlay(model, scroller, state);
}

function colOf(data, day) {
  // the column holding an ISO day (columns are sorted, contiguous)
  let lo = 0;
  let hi = data.columns.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (data.columns[mid][0] <= day) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

function drawOverlay(model, scroller, state, pending) {
  const lay = state.layout;
  const g = scroller.querySelector(".sc-hm-overlay");
  if (!lay || !g) return;
  const parts = [];
  const box = (i0, i1, c0, c1, css, stroke, fill) => {
    const x = LABEL_W + c0 * lay.cw - 1;
    const y = lay.ys[i0] - 1;
    const w = (c1 - c0 + 1) * lay.cw + 1;
    const h = lay.ys[i1] + lay.rows[i1].h - lay.ys[i0];
    parts.push(`<rect class="${css}" x="${x}" y="${y}" width="${w}" height="${h}" fill="${fill}" stroke="${stroke}" stroke-width="2"/>`);
  };
  const sel = pending || model.get("selection");
  if (sel && sel.start) {
    const c0 = colOf(lay.data, sel.start);
    const c1 = colOf(lay.data, sel.end);
    const inRows = lay.rows.map((v, i) => [v, i]).filter(([v]) => !sel.sources || sel.sources.includes(v.row.source));
    if (inRows.length) {
      box(inRows[0][1], inRows[inRows.length - 1][1], c0, c1, "sc-hm-selection", "#0969da", "rgba(9,105,218,0.18)");
    }
  }
  const focus = model.get("focus");
  if (focus && focus.length === 2 && lay.rowAt.has(focus[0])) {
    const i = lay.rowAt.get(focus[0]);
    box(i, i, focus[1], focus[1], "sc-hm-focus", "#bc4c00", "none");
    const x = LABEL_W + focus[1] * lay.cw;
    if (x < scroller.scrollLeft + LABEL_W || x > scroller.scrollLeft + scroller.clientWidth - 20) {
      scroller.scrollLeft = Math.max(0, x - scroller.clientWidth / 2);
    }
  }
  g.innerHTML = parts.join("");
}

function cellOf(target) {
  const rect = target && target.closest ? target.closest(".sc-hm-cell") : null;
  return rect ? { r: Number(rect.dataset.r), c: Number(rect.dataset.c), rect } : null;
}

function render({ model, el }) {
  const root = document.createElement("div");
  root.className = "sc-hm";
  const scroller = document.createElement("div");
  scroller.className = "sc-hm-scroll";
  const tip = document.createElement("div");
  tip.className = "sc-hm-tip";
  root.append(scroller, tip);
  el.append(root);
  const state = { layout: null, drag: null, anchor: null };
  const redraw = () => draw(model, scroller, state);

  const pendingSelection = (a, b) => {
    const lay = state.layout;
    const [c0, c1] = [Math.min(a.c, b.c), Math.max(a.c, b.c)];
    const sources = [...new Set([a.r, b.r].map((r) => lay.data.rows[r].source))];
    const i0 = Math.min(lay.rowAt.get(a.r), lay.rowAt.get(b.r));
    const i1 = Math.max(lay.rowAt.get(a.r), lay.rowAt.get(b.r));
    const spanned = [...new Set(lay.rows.slice(i0, i1 + 1).map((v) => v.row.source))];
    return { start: lay.data.columns[c0][0], end: lay.data.columns[c1][1], sources: spanned.length ? spanned : sources };
  };

  scroller.addEventListener("pointerdown", (ev) => {
    const hit = cellOf(ev.target);
    if (!hit || ev.button > 0) return;
    state.drag = { from: hit, to: hit, moved: false, shift: ev.shiftKey };
    if (ev.pointerType === "mouse") ev.preventDefault();
  });
  scroller.addEventListener("pointermove", (ev) => {
    const hit = cellOf(document.elementFromPoint(ev.clientX, ev.clientY));
    if (hit && state.layout) {
      const { data } = state.layout;
      const row = data.rows[hit.r];
      const [first, last] = data.columns[hit.c];
      const when = first === last ? first : `${first} … ${last}`;
      const what = row.stage ? `${row.source} · ${row.stage}` : `${row.source} (worst stage)`;
      tip.textContent = `${what} · ${when}: ${describeCounts(data, row.counts[hit.c])}`;
      tip.style.display = "block";
      const box = root.getBoundingClientRect();
      tip.style.left = `${Math.min(ev.clientX - box.left + 12, box.width - 260)}px`;
      tip.style.top = `${ev.clientY - box.top + 14}px`;
    } else {
      tip.style.display = "none";
    }
    const drag = state.drag;
    if (drag && hit && (hit.r !== drag.to.r || hit.c !== drag.to.c)) {
      drag.to = hit;
      drag.moved = true;
      drawOverlay(model, scroller, state, pendingSelection(drag.from, drag.to));
    }
  });
  scroller.addEventListener("pointerleave", () => {
    tip.style.display = "none";
  });
  const finish = (ev) => {
    const drag = state.drag;
    state.drag = null;
    if (!drag) return;
    if (drag.moved) {
      model.send({ event: "select", rows: [drag.from.r, drag.to.r], cols: [drag.from.c, drag.to.c] });
      state.anchor = drag.from;
    } else if ((drag.shift || ev.shiftKey) && state.anchor) {
      model.send({ event: "select", rows: [state.anchor.r, drag.from.r], cols: [state.anchor.c, drag.from.c] });
    } else {
      model.send({ event: "click", row: drag.from.r, col: drag.from.c });
      state.anchor = drag.from;
    }
  };
  scroller.addEventListener("pointerup", finish);
  scroller.addEventListener("pointercancel", () => {
    state.drag = null;
    drawOverlay(model, scroller, state);
  });
  scroller.addEventListener("click", (ev) => {
    const label = ev.target.closest ? ev.target.closest(".sc-hm-source") : null;
    if (!label) return;
    const source = label.dataset.source;
    const open = model.get("expanded");
    model.set("expanded", open.includes(source) ? open.filter((s) => s !== source) : [...open, source]);
    model.save_changes();
  });

  model.on("change:data", redraw);
  model.on("change:expanded", redraw);
  model.on("change:problems_only", redraw);
  model.on("change:selection", () => drawOverlay(model, scroller, state));
  model.on("change:focus", () => drawOverlay(model, scroller, state));
  let lastWidth = 0;
  const observer = new ResizeObserver(() => {
    if (Math.abs(scroller.clientWidth - lastWidth) > 8) {
      lastWidth = scroller.clientWidth;
      requestAnimationFrame(redraw);
    }
  });
  observer.observe(scroller);
  redraw();
  return () => observer.disconnect();
}

export default { render };
