/* memscape explorer: the landscape at each value of a family's parameter, and its
   bifurcation diagram (or, a family with `curves`, curves against the parameter with
   error bars) with a cursor that follows the slider; a click there moves the slider.
   Data: the JSON block #explorer-data (explorer.json). Self-test: open the page with
   #selftest. */
(function () {
  "use strict";
  const DATA = JSON.parse(document.getElementById("explorer-data").textContent);
  const INDEX = [["minimum", "circle", "#1f77b4"], ["saddle", "x", "#d62728"],
                 ["maximum", "triangle-up", "#2ca02c"]];
  const EVENT_SYMBOL = {fold: "square", pitchfork: "diamond", saddle_connection: "star",
                        branch_point: "circle-open"};
  const CONFIG = {displaylogo: false, responsive: true};
  const land = document.getElementById("landscape");
  const diag = document.getElementById("diagram");
  const slider = document.getElementById("slider");
  const ySelect = document.getElementById("diagram-y");
  const colourSelect = document.getElementById("colour-by");
  const BASIN_COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b",
                        "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];
  const state = {family: 0, frame: 0, pending: Promise.resolve()};

  const style = (i) => INDEX[i] || ["index " + i, "diamond", "#9467bd"];
  const fam = () => DATA.families[state.family];
  const fmt = (v) => (v === null || v === undefined ? "n/a" : Number(v).toPrecision(4));
  const integer = (f) => f.frames.every((fr) => Number.isInteger(fr.value));
  const fmtValue = (f, v) => (integer(f) ? String(v) : fmt(v));
  const markersOf = (fr) => fr.markers || [];

  function quantile(z, q) {
    const flat = [].concat(...z).filter((v) => v !== null).sort((a, b) => a - b);
    if (!flat.length) return 1;
    const top = flat[Math.min(flat.length - 1, Math.floor(q * (flat.length - 1)))];
    return top > 0 ? top : flat[flat.length - 1] || 1;
  }

  const hasBasins = (f) => f.frames.some((fr) => fr.basins);
  const showBasins = (f, fr) => colourSelect.value === "basins" && Boolean(fr.basins);

  /* The basins as a heatmap of minimum numbers: one colour per minimum of the frame
     (the colour of its position in the frame's points), nodes that reach none blank. */
  function basinTrace(f, fr) {
    const mins = fr.points.map((p, i) => [p, i]).filter(([p]) => p.morse_index === 0);
    const n = Math.max(1, fr.points.length), scale = [];
    for (let i = 0; i < n; i++) {
      const color = BASIN_COLORS[i % BASIN_COLORS.length];
      scale.push([i / n, color], [(i + 1) / n, color]);
    }
    const at = (i) => (i === null ? null : fr.points[i]);
    return {
      type: "heatmap", name: "basins", x: f.x, y: f.y, z: fr.basins, zmin: -0.5,
      zmax: n - 0.5, colorscale: scale, showscale: false, opacity: 0.55, hoverongaps: false,
      customdata: fr.basins.map((r) => r.map((i) => (at(i) ? [fmt(at(i).x0), fmt(at(i).x1)]
                                                             : ["none", "none"]))),
      hovertemplate: "x0 = %{x:.3f}<br>x1 = %{y:.3f}<br>flows to the minimum at " +
        "(%{customdata[0]}, %{customdata[1]})<extra>basin</extra>",
      meta: mins.length,
    };
  }

  function landscapeTraces(f, fr) {
    const zlabel = f.surface === "energy" ? "E − min E" : f.surface;
    const basins = showBasins(f, fr);
    const traces = [{
      type: "contour", name: "landscape", x: f.x, y: f.y, z: fr.z, zmin: 0,
      zmax: quantile(fr.z, 0.9), ncontours: 24, colorscale: "Viridis", reversescale: true,
      contours: {coloring: basins ? "lines" : "heatmap", showlines: true},
      line: {width: basins ? 0.8 : 0.5, color: "rgba(0,0,0,0.3)"},
      colorbar: {title: {text: zlabel, side: "right"}, len: 0.9},
      hovertemplate: "x0 = %{x:.3f}<br>x1 = %{y:.3f}<br>" + zlabel + " = %{z:.4g}<extra></extra>",
    }];
    if (basins) traces.push(basinTrace(f, fr));
    const ex = [], ey = [];
    for (const [a, b] of fr.edges) { ex.push(a[0], b[0], null); ey.push(a[1], b[1], null); }
    traces.push({type: "scatter", mode: "lines", name: "Morse–Smale edge", x: ex, y: ey,
                 line: {color: "black", width: 1.2}, hoverinfo: "skip"});
    const plabel = f.patterns_label || "patterns";
    traces.push({type: "scatter", mode: "markers", name: plabel,
                 x: fr.patterns.map((p) => p[0]), y: fr.patterns.map((p) => p[1]),
                 marker: {symbol: "star", color: "black", size: 8},
                 hovertemplate: plabel + "<br>x0 = %{x:.4f}<br>x1 = %{y:.4f}<extra></extra>"});
    const groups = new Map();  // extra markers: one trace (legend entry) per label
    for (const m of markersOf(fr)) {
      if (!groups.has(m.label)) groups.set(m.label, []);
      groups.get(m.label).push(m);
    }
    for (const [label, ms] of groups) {
      traces.push({
        type: "scatter", mode: "markers", name: label,
        x: ms.map((m) => m.x0), y: ms.map((m) => m.x1),
        customdata: ms.map((m) => [fmt(m.energy), m.text || ""]),
        marker: {symbol: ms.map((m) => m.symbol || "circle"), color: ms.map((m) => m.color),
                 size: 12, line: {color: "white", width: 1.5}},
        hovertemplate: label + "<br>x0 = %{x:.4f}<br>x1 = %{y:.4f}<br>E = %{customdata[0]}" +
          "<br>%{customdata[1]}<extra></extra>",
      });
    }
    for (let i = 0; i < INDEX.length; i++) {
      const pts = fr.points.filter((p) => p.morse_index === i);
      const [name, symbol, color] = style(i);
      traces.push({
        type: "scatter", mode: "markers", name: name + " (index " + i + ")",
        x: pts.map((p) => p.x0), y: pts.map((p) => p.x1),
        customdata: pts.map((p) => [fmt(p.energy), p.morse_index, p.label, p.kind]),
        marker: {symbol: symbol, color: color, size: 11, line: {color: "black", width: 1}},
        hovertemplate: "x0 = %{x:.4f}<br>x1 = %{y:.4f}<br>E = %{customdata[0]}<br>" +
          "Morse index %{customdata[1]} (%{customdata[3]})<br>label: %{customdata[2]}<extra></extra>",
      });
    }
    return traces;
  }

  function diagramTraces(f, y) {
    const traces = [];
    for (let i = 0; i < INDEX.length; i++) {
      const xs = [], ys = [];
      for (const br of f.diagram.branches) {
        const n = br.parameter.length;
        for (let k = 0; k < n; k++) {
          const here = br.morse_index[k] === i;
          const next = k + 1 < n && br.morse_index[k + 1] === i;
          if (here || next) { xs.push(br.parameter[k]); ys.push(br[y][k]); }
          if (here && !next) { if (k + 1 < n) { xs.push(br.parameter[k + 1]); ys.push(br[y][k + 1]); }
                               xs.push(null); ys.push(null); }
        }
      }
      const [name, , color] = style(i);
      traces.push({type: "scatter", mode: "lines", name: name + " branch", x: xs, y: ys,
                   line: {color: color, width: 2}, connectgaps: false,
                   hovertemplate: f.symbol + " = %{x:.4g}<br>" + y + " = %{y:.4g}<extra>" + name + "</extra>"});
    }
    const ev = f.diagram.events;
    traces.push({type: "scatter", mode: "markers", name: "bifurcation",
                 x: ev.map((e) => e.parameter), y: ev.map((e) => e[y]),
                 customdata: ev.map((e) => [e.kind, e.index_before, e.index_after]),
                 marker: {symbol: ev.map((e) => EVENT_SYMBOL[e.kind] || "circle-open"),
                          color: "black", size: 10},
                 hovertemplate: "%{customdata[0]} at " + f.symbol + " = %{x:.5g}<br>" +
                   "index %{customdata[1]} → %{customdata[2]}<extra></extra>"});
    return traces;
  }

  function curveTraces(f) {
    const traces = [], c = f.curves;
    for (const s of c.series) {
      if (s.min && s.max) {  // the band (e.g. the seed range), under its curve
        const xs = [], ys = [];
        for (let k = 0; k < s.x.length; k++) { xs.push(s.x[k]); ys.push(s.max[k]); }
        for (let k = s.x.length - 1; k >= 0; k--) { xs.push(s.x[k]); ys.push(s.min[k]); }
        traces.push({type: "scatter", mode: "lines", name: s.name + " (range)", x: xs, y: ys,
                     fill: "toself", fillcolor: s.color, opacity: 0.15, line: {width: 0},
                     hoverinfo: "skip", showlegend: false});
      }
      const bars = s.low && s.high;
      const gap = (a, b) => (a === null || b === null ? 0 : Math.abs(a - b));
      traces.push({
        type: "scatter", mode: "lines+markers", name: s.name, x: s.x, y: s.y,
        line: {color: s.color, width: 2, dash: s.dash || "solid"},
        marker: {color: s.color, size: 7},
        error_y: bars ? {type: "data", symmetric: false, color: s.color, thickness: 1.2, width: 4,
                         array: s.y.map((v, k) => gap(s.high[k], v)),
                         arrayminus: s.y.map((v, k) => gap(v, s.low[k]))} : {visible: false},
        customdata: s.x.map((_, k) => bars ? [fmt(s.low[k]), fmt(s.high[k])] : ["n/a", "n/a"]),
        hovertemplate: s.name + "<br>" + f.symbol + " = %{x}<br>%{y:.3f}" +
          (bars ? " [%{customdata[0]}, %{customdata[1]}]" : "") + "<extra></extra>",
      });
    }
    return traces;
  }

  function counts(fr) {
    const n = [0, 0, 0];
    for (const p of fr.points) if (p.morse_index >= 0 && p.morse_index < 3) n[p.morse_index]++;
    const many = (k, one, more) => k + " " + (k === 1 ? one : more);
    const byLabel = new Map();
    for (const m of markersOf(fr)) byLabel.set(m.label, (byLabel.get(m.label) || 0) + 1);
    const extra = Array.from(byLabel, ([label, k]) => k + " × " + label).join(", ");
    if (!fr.points.length && extra) return extra;
    return many(n[0], "minimum", "minima") + ", " + many(n[1], "saddle", "saddles") + ", " +
      many(n[2], "maximum", "maxima") + " (" + many(fr.points.length, "critical point",
      "critical points") + ")" + (extra ? "; " + extra : "");
  }

  function draw() {
    const f = fam(), fr = f.frames[state.frame], y = ySelect.value;
    const value = fmtValue(f, fr.value), name = f.symbol;
    document.getElementById("slider-label").textContent = name + " = " + value;
    document.getElementById("counts").textContent = name + " = " + value + ": " + counts(fr);
    const landLayout = {
      title: {text: fr.title || f.name + ": " + name + " = " + value, x: 0.02, xanchor: "left"},
      margin: {t: 40, r: 10, b: 45, l: 50},
      xaxis: {title: {text: "x0"}, range: [f.x[0], f.x[f.x.length - 1]]},
      yaxis: {title: {text: "x1"}, range: [f.y[0], f.y[f.y.length - 1]], scaleanchor: "x"},
      legend: {orientation: "h", y: -0.15}, uirevision: f.name,
    };
    const v0 = f.frames[0].value, v1 = f.frames[f.frames.length - 1].value, c = f.curves;
    const diagLayout = {
      title: {text: c ? c.title || c.y_label : "bifurcation diagram", x: 0.02, xanchor: "left"},
      margin: {t: 40, r: 10, b: 45, l: 60},
      xaxis: {title: {text: c ? c.x_label : name}, type: (c ? c.log : f.log) ? "log" : "linear",
              autorange: v0 > v1 ? "reversed" : true,
              tickvals: c ? f.frames.map((q) => q.value) : undefined},  // curves: ticks at frames
      yaxis: c ? {title: {text: c.y_label}, range: c.y_range, autorange: !c.y_range}
               : {title: {text: y}},
      legend: {orientation: "h", y: -0.15}, uirevision: f.name + (c ? "" : y),
      shapes: [{type: "line", xref: "x", yref: "paper", x0: fr.value, x1: fr.value, y0: 0,
                y1: 1, line: {color: "black", width: 1.5, dash: "dot"}}],
    };
    state.pending = Promise.all([
      Plotly.react(land, landscapeTraces(f, fr), landLayout, CONFIG),
      Plotly.react(diag, c ? curveTraces(f) : diagramTraces(f, y), diagLayout, CONFIG),
    ]);
    return state.pending;
  }

  function setFamily(k) {
    state.family = k;
    state.frame = 0;
    slider.max = String(fam().frames.length - 1);
    slider.value = "0";
    ySelect.value = fam().surface === "energy" ? "energy" : "x0";  // score-only: no energy
    ySelect.parentElement.hidden = Boolean(fam().curves);  // curves have their own y-axis
    colourSelect.parentElement.hidden = !hasBasins(fam());
    document.getElementById("help-diagram").hidden = Boolean(fam().curves);
    document.getElementById("help-curves").hidden = !fam().curves;
    document.getElementById("description").textContent = fam().description;
    for (const [j, b] of Array.from(document.querySelectorAll("#families button")).entries())
      b.classList.toggle("active", j === k);
    return draw();
  }

  function setFrame(k) {
    state.frame = Math.max(0, Math.min(fam().frames.length - 1, k));
    slider.value = String(state.frame);
    return draw();
  }

  const nav = document.getElementById("families");
  DATA.families.forEach((f, k) => {
    const b = document.createElement("button");
    b.type = "button";
    b.textContent = f.name;
    b.addEventListener("click", () => setFamily(k));
    nav.appendChild(b);
  });
  nav.hidden = DATA.families.length < 2;
  /* The frame whose value is nearest to x (in log x for a log axis). */
  function nearestFrame(x) {
    const f = fam(), c = f.curves, log = c ? c.log : f.log;
    const t = (v) => (log ? Math.log(Math.max(v, 1e-300)) : v);
    let best = 0;
    f.frames.forEach((fr, k) => {
      if (Math.abs(t(fr.value) - t(x)) < Math.abs(t(f.frames[best].value) - t(x))) best = k;
    });
    return best;
  }
  function onClick(ev) {
    const p = ev && ev.points && ev.points[0];
    if (p && typeof p.x === "number" && isFinite(p.x)) setFrame(nearestFrame(p.x));
  }
  slider.addEventListener("input", () => setFrame(Number(slider.value)));
  ySelect.addEventListener("change", draw);
  colourSelect.addEventListener("change", draw);
  let timer = null;
  document.getElementById("play").addEventListener("click", (e) => {
    if (timer) { clearInterval(timer); timer = null; e.target.textContent = "play"; return; }
    e.target.textContent = "pause";
    timer = setInterval(() => setFrame((state.frame + 1) % fam().frames.length), 600);
  });

  /* Self-test: move the slider (an input event, as a user would) from the first to the
     last value of every family and check that the plotted data and the cursor changed. */
  async function selfTest() {
    const out = document.getElementById("selftest");
    const report = {families: [], errors: window.__explorerErrors || []};
    let ok = true;
    for (let k = 0; k < DATA.families.length; k++) {
      await setFamily(k);
      const f = fam(), last = f.frames.length - 1;
      const z0 = JSON.stringify(land.data[0].z), c0 = diag.layout.shapes[0].x0;
      const m0 = land.querySelectorAll(".scatterlayer .point").length;
      slider.value = String(last);
      slider.dispatchEvent(new Event("input"));
      await state.pending;
      const fr = f.frames[last];
      const m1 = land.querySelectorAll(".scatterlayer .point").length;
      const lines = diag.querySelectorAll(".scatterlayer .js-line").length > 0;
      const res = {
        family: f.name, frames: f.frames.length, kind: f.curves ? "curves" : "diagram",
        z_changed: JSON.stringify(land.data[0].z) !== z0,
        z_is_last_frame: JSON.stringify(land.data[0].z) === JSON.stringify(fr.z),
        cursor_moved: c0 !== diag.layout.shapes[0].x0 && diag.layout.shapes[0].x0 === fr.value,
        markers_drawn: m1 === fr.points.length + fr.patterns.length + markersOf(fr).length,
        markers_before: m0, markers_after: m1, extra_markers: markersOf(fr).length,
        contour_drawn: land.querySelectorAll(".contourlayer path, .hm image, .contour").length > 0,
      };
      if (f.curves) {  // every series drawn, and its error bars where it has them
        const bars = f.curves.series.filter((s) => s.low && s.high).length;
        res.curves_drawn = lines && diag.querySelectorAll(".scatterlayer .trace").length >=
          f.curves.series.length && (!bars || diag.querySelectorAll(".errorbar").length > 0);
        res.error_bars = diag.querySelectorAll(".errorbar").length;
      } else {
        res.branches_drawn = lines;
      }
      /* a click on the right panel at the first frame's value moves the slider back */
      diag.emit("plotly_click", {points: [{x: f.frames[0].value}]});
      await state.pending;
      res.click_moves_slider = state.frame === 0 && slider.value === "0" &&
        diag.layout.shapes[0].x0 === f.frames[0].value;
      const pass = res.z_changed && res.z_is_last_frame && res.cursor_moved &&
        res.markers_drawn && res.contour_drawn && (f.curves ? res.curves_drawn :
        res.branches_drawn) && res.click_moves_slider;
      res.pass = pass;
      const basinFrame = f.frames.findIndex((q) => q.basins);
      if (basinFrame >= 0) {  // colour by basin: a heatmap of the frame's basin numbers
        await setFrame(basinFrame);
        colourSelect.value = "basins";
        colourSelect.dispatchEvent(new Event("change"));
        await state.pending;
        const hm = land.data.find((tr) => tr.type === "heatmap");
        res.basins_drawn = Boolean(hm) && JSON.stringify(hm.z) ===
          JSON.stringify(f.frames[basinFrame].basins) && land.querySelectorAll(".hm image").length > 0;
        colourSelect.value = "energy";
        colourSelect.dispatchEvent(new Event("change"));
        await state.pending;
        res.basins_hidden_again = !land.data.some((tr) => tr.type === "heatmap");
        res.pass = pass && res.basins_drawn && res.basins_hidden_again;
      }
      ok = ok && (last === 0 || res.pass);
      report.families.push(res);
    }
    await setFamily(0);
    ok = ok && report.errors.length === 0;
    out.textContent = JSON.stringify(report);
    out.dataset.result = ok ? "pass" : "fail";
  }

  const ready = setFamily(0).then(() => diag.on("plotly_click", onClick));
  if (location.hash === "#selftest") {
    ready.then(selfTest).catch((err) => {
      const out = document.getElementById("selftest");
      out.textContent = "error: " + err;
      out.dataset.result = "fail";
    });
  }
})();
