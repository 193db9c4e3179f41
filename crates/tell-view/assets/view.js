// Renders the run embedded in #data: one article per response, each token a span coloured on a
// diverging scale around the monitor's threshold. body[data-ready] holds the number of coloured
// tokens shown once rendering is done; body[data-errors] counts script errors (checked by
// scripts/check-view.sh in headless Chromium).
(function () {
  var errors = 0;
  window.addEventListener("error", function () {
    errors += 1;
    document.body.dataset.errors = String(errors);
  });
  var data = JSON.parse(document.getElementById("data").textContent);
  var list = document.getElementById("list");
  var thr = data.threshold;
  var scale = data.scale > 0 ? data.scale : 1;

  function colour(s) {
    var t = Math.max(-1, Math.min(1, (s - thr) / scale));
    var a = Math.abs(t);
    var hi = t >= 0 ? [214, 39, 40] : [49, 104, 220];
    var c = hi.map(function (v) { return Math.round(255 + (v - 255) * a); });
    return "rgb(" + c.join(",") + ")";
  }

  function option(select, values) {
    values.forEach(function (v) {
      var o = document.createElement("option");
      o.value = v;
      o.textContent = v;
      select.appendChild(o);
    });
  }

  function uniq(key) {
    var seen = {};
    data.responses.forEach(function (r) { seen[r[key]] = true; });
    return Object.keys(seen).sort();
  }

  var filters = { condition: "", tier: "", label: "" };
  ["condition", "tier", "label"].forEach(function (k) {
    var sel = document.getElementById("f-" + k);
    option(sel, uniq(k));
    sel.addEventListener("change", function () {
      filters[k] = sel.value;
      render();
    });
  });

  function article(r) {
    var a = document.createElement("article");
    var head = document.createElement("div");
    head.className = "head";
    var parts = [
      ["b", r.id],
      ["span", r.condition + " / " + r.tier],
      ["span", "class: " + r["class"]],
    ];
    parts.forEach(function (p) {
      var e = document.createElement(p[0]);
      e.textContent = p[1];
      head.appendChild(e);
    });
    var tag = document.createElement("span");
    tag.className = "tag " + r.label;
    tag.textContent = r.label;
    head.appendChild(tag);
    if (r.mean !== null) {
      var m = document.createElement("span");
      m.textContent = "mean score " + r.mean.toFixed(3) + (r.mean > thr ? " (above threshold)" : "");
      head.appendChild(m);
    }
    a.appendChild(head);
    var d = document.createElement("details");
    var s = document.createElement("summary");
    s.textContent = "prompt";
    var pre = document.createElement("pre");
    pre.textContent = r.prompt;
    d.appendChild(s);
    d.appendChild(pre);
    a.appendChild(d);
    var p = document.createElement("p");
    p.className = "tokens";
    var n = 0;
    if (r.scores) {
      r.pieces.forEach(function (piece, i) {
        var t = document.createElement("span");
        t.className = "tok";
        t.style.background = colour(r.scores[i]);
        t.title = "token " + i + ": " + r.scores[i].toFixed(4);
        t.textContent = piece;
        p.appendChild(t);
        n += 1;
      });
    } else {
      p.textContent = r.text;
    }
    a.appendChild(p);
    return [a, n];
  }

  function render() {
    list.textContent = "";
    var shown = 0, tokens = 0;
    var frag = document.createDocumentFragment();
    data.responses.forEach(function (r) {
      if ((filters.condition && r.condition !== filters.condition) ||
          (filters.tier && r.tier !== filters.tier) ||
          (filters.label && r.label !== filters.label)) {
        return;
      }
      var made = article(r);
      frag.appendChild(made[0]);
      shown += 1;
      tokens += made[1];
    });
    list.appendChild(frag);
    document.getElementById("count").textContent = shown + " of " + data.responses.length + " responses";
    document.body.dataset.ready = String(tokens);
  }

  render();
})();
