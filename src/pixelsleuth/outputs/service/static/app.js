/* The page of `pixelsleuth serve`: send images to POST /v1/analyze and show each result as a card.
 *
 * Everything that comes from the server or from a file name is put in the page as text (textContent,
 * element properties), never parsed as HTML. Pictures are fetched with the API key and shown from blob:
 * URLs, so nothing is loaded from anywhere but this server.
 */
(function () {
  "use strict";

  var KEY_STORE = "pixelsleuth.apiKey";
  var PARALLEL = 2; // files analysed at the same time
  // Titles and sentences as in the HTML report (pixelsleuth.outputs.report.record_view.VERDICTS);
  // the colours are in app.css (.verdict-<name>).
  var VERDICTS = {
    "ai-generated": ["AI-generated", "Probably made by a generative model."],
    "manipulated": ["Manipulated", "Probably edited: part of the image was changed."],
    "authentic": ["Authentic", "The evidence points to an image straight from a camera."],
    "inconclusive": ["Inconclusive", "The evidence does not decide either way."],
    "error": ["Error", "The image could not be analysed."]
  };
  var DECIDED_BY = {
    "calibrated-score": "the calibrated score at its operating point",
    "conflict": "a conflict between strong findings",
    "evidence-combination": "the findings combined (no calibrated score was available)",
    "no-evidence": "no evidence either way"
  };
  var MAP_LABELS = {
    "fused": "fused localization (calibrated)",
    "ela": "ELA: error level analysis",
    "noise": "noise inconsistency",
    "jpeg-ghost": "JPEG ghost",
    "jpeg-double": "double JPEG",
    "jpeg-grid": "JPEG grid",
    "copy-move": "copy-move (keypoints)",
    "copy-move-dense": "copy-move (dense)"
  };
  var PROVENANCE_SOURCES = ["c2pa", "exif", "xmp", "iptc", "generator-text", "watermark", "camera-consistency"];
  var MAX_TABLE_ROWS = 40;
  var MAX_LIST_ITEMS = 2;
  var MAX_VALUE_CHARS = 400;
  var MAX_DATA_CHARS = 20000;
  var SVG = "http://www.w3.org/2000/svg";

  var queue = [];
  var running = 0;
  var counts = { total: 0, done: 0, failed: 0 };
  var cardNumber = 0;
  var keyInput, localizeBox, fileInput, dropZone, progress, results;

  // ---- small helpers -------------------------------------------------------------------------------

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) { node.className = className; }
    if (text !== undefined && text !== null) { node.textContent = String(text); }
    return node;
  }

  function isNumber(value) {
    return typeof value === "number" && isFinite(value);
  }

  function valueText(value) {
    var text;
    if (value === null || value === undefined) {
      text = "—";
    } else if (typeof value === "boolean") {
      text = value ? "yes" : "no";
    } else if (typeof value === "number") {
      text = Number.isInteger(value) ? String(value) : String(Number(value.toPrecision(4)));
    } else if (Array.isArray(value) && value.every(function (item) { return item === null || typeof item !== "object"; })) {
      text = value.map(valueText).join(", ") || "—";
    } else if (typeof value === "object") {
      text = JSON.stringify(value);
    } else {
      text = String(value);
    }
    return text.length <= MAX_VALUE_CHARS ? text : text.slice(0, MAX_VALUE_CHARS - 1) + "…";
  }

  function isRecord(value) {
    return value !== null && typeof value === "object" && !Array.isArray(value);
  }

  // (dotted key, text) for every leaf of nested objects and lists of objects (the first few of a list).
  function flatten(data, prefix) {
    var rows = [];
    if (isRecord(data)) {
      Object.keys(data).forEach(function (key) {
        var value = data[key];
        var name = prefix ? prefix + "." + key : key;
        if (isRecord(value) || (Array.isArray(value) && value.length && value.every(isRecord))) {
          rows = rows.concat(flatten(value, name));
        } else {
          rows.push([name, valueText(value)]);
        }
      });
    } else if (Array.isArray(data)) {
      data.slice(0, MAX_LIST_ITEMS).forEach(function (value, index) {
        rows = rows.concat(flatten(value, prefix + "[" + index + "]"));
      });
      if (data.length > MAX_LIST_ITEMS) { rows.push([prefix, "… " + (data.length - MAX_LIST_ITEMS) + " more"]); }
    } else {
      rows.push([prefix || "value", valueText(data)]);
    }
    return rows;
  }

  function evidenceItems(analysis) {
    return (Array.isArray(analysis.evidence) ? analysis.evidence : []).filter(isRecord);
  }

  function strengthOf(item) {
    return isNumber(item.strength) ? Math.min(Math.max(item.strength, 0), 1) : 0;
  }

  function verdictKey(verdict) {
    return Object.prototype.hasOwnProperty.call(VERDICTS, verdict) ? verdict : "inconclusive";
  }

  function decidedByText(decidedBy) {
    var text = String(decidedBy || "");
    if (text.indexOf("hard-evidence:") === 0) { return "hard evidence from " + text.slice(14); }
    return Object.prototype.hasOwnProperty.call(DECIDED_BY, text) ? DECIDED_BY[text] : text;
  }

  function apiKey() {
    return keyInput.value.trim();
  }

  function authHeaders() {
    var key = apiKey();
    return key ? { "Authorization": "Bearer " + key } : {};
  }

  // The server's sentence for a failed request (its {"error": {"type", "message"}} body), or one of ours.
  function errorSentence(response, body) {
    var message = isRecord(body) && isRecord(body.error) && body.error.message ? String(body.error.message)
      : "The server answered HTTP " + response.status + (response.statusText ? " (" + response.statusText + ")" : "") + ".";
    var retry = response.headers.get("Retry-After");
    if (response.status === 429 && retry && !/try again/i.test(message)) { message += " (try again in " + retry + " s)"; }
    return message;
  }

  function readJson(response) {
    return response.text().then(function (text) {
      try { return JSON.parse(text); } catch (error) { return null; }
    });
  }

  // A picture of this server fetched with the API key, as a blob: URL.
  function blobUrl(url) {
    return fetch(url, { headers: authHeaders(), credentials: "same-origin" }).then(function (response) {
      if (!response.ok) {
        return readJson(response).then(function (body) { throw new Error(errorSentence(response, body)); });
      }
      return response.blob().then(function (blob) { return URL.createObjectURL(blob); });
    });
  }

  // ---- progress ------------------------------------------------------------------------------------

  function showProgress(current) {
    var text;
    if (running > 0 || queue.length > 0) {
      text = "Analysing " + (current ? current + " " : "") + "(" + counts.done + " of " + counts.total + " done)…";
    } else {
      text = "Done: " + counts.done + " of " + counts.total + " analysed" +
        (counts.failed ? ", " + counts.failed + " failed." : ".");
    }
    progress.textContent = text;
  }

  // ---- cards ---------------------------------------------------------------------------------------

  function newCard(file) {
    cardNumber += 1;
    var card = el("article", "card verdict-pending");
    card.id = "card-" + cardNumber;
    card.setAttribute("aria-labelledby", card.id + "-title");
    var banner = el("header", "card-banner");
    banner.appendChild(el("p", "kicker card-file", file.name || "(no file name)"));
    var heading = el("h2", "card-heading");
    heading.id = card.id + "-title";
    heading.appendChild(el("span", "verdict-title", "Waiting"));
    banner.appendChild(heading);
    banner.appendChild(el("p", "words card-status", "In the queue."));
    card.appendChild(banner);
    card.appendChild(el("div", "card-body"));
    results.appendChild(card);
    return card;
  }

  function setStatus(card, text) {
    card.querySelector(".card-status").textContent = text;
  }

  function showError(card, message) {
    card.className = "card verdict-error";
    card.querySelector(".verdict-title").textContent = "Not analysed";
    setStatus(card, "");
    var body = card.querySelector(".card-body");
    body.textContent = "";
    body.appendChild(el("p", "error-message", message));
  }

  function section(title) {
    var part = el("div", "card-section");
    part.appendChild(el("h3", null, title));
    return part;
  }

  function facts(rows) {
    var list = el("dl", "facts");
    rows.forEach(function (row) {
      if (row[1] === "" || row[1] === null || row[1] === undefined) { return; }
      list.appendChild(el("dt", null, row[0]));
      list.appendChild(el("dd", row[2] || null, row[1]));
    });
    return list;
  }

  function renderBanner(card, analysis) {
    var key = verdictKey(analysis.verdict);
    card.className = "card verdict-" + key;
    var view = VERDICTS[key];
    var heading = card.querySelector(".card-heading");
    heading.textContent = "";
    heading.appendChild(el("span", "verdict-title", key === analysis.verdict ? view[0] : String(analysis.verdict || "")));
    if (isNumber(analysis.score)) {
      var uncalibrated = analysis.decided_by === "evidence-combination";
      var score = el("span", "score", uncalibrated ? analysis.score.toFixed(3) + " " : (100 * analysis.score).toFixed(1) + " % ");
      score.appendChild(el("small", null, uncalibrated ? "uncalibrated score" : "probability not authentic"));
      heading.appendChild(score);
    }
    setStatus(card, view[1] + (isNumber(analysis.score) || key === "error" ? "" : " No score: no evidence spoke either way."));
  }

  function renderSummary(body, analysis) {
    var part = section("Why");
    var point = isRecord(analysis.operating_point) ? analysis.operating_point : null;
    part.appendChild(facts([
      ["decided by", decidedByText(analysis.decided_by)],
      ["operating point", point && point.label ? String(point.label) : ""]
    ]));
    if (point) {
      var rows = Object.keys(point).filter(function (name) { return name !== "label"; }).map(function (name) {
        return [name, valueText(point[name]), "mono"];
      });
      if (rows.length) {
        var details = el("details");
        details.appendChild(el("summary", null, "Operating point details"));
        details.appendChild(facts(rows));
        part.appendChild(details);
      }
    }
    if (analysis.explanation) { part.appendChild(el("p", "explanation", analysis.explanation)); }
    var narration = isRecord(analysis.narration) ? analysis.narration : null;
    if (narration && narration.text) {
      var aside = el("aside", "narration");
      aside.setAttribute("aria-label", "Machine narration");
      aside.appendChild(el("p", "label", "Machine narration" + (narration.model ? " by " + narration.model : "") +
        ": a language model's retelling of the evidence above, not evidence itself"));
      aside.appendChild(el("p", null, narration.text));
      part.appendChild(aside);
    } else if (narration && isRecord(narration.error)) {
      part.appendChild(el("p", "note", "Machine narration was asked for but not made: " +
        (narration.error.message || "the narration failed")));
    }
    body.appendChild(part);
  }

  function regionBoxes(analysis) {
    var boxes = [];
    evidenceItems(analysis).forEach(function (item) {
      if (item.source !== "localization" || !isRecord(item.data) || !Array.isArray(item.data.regions)) { return; }
      item.data.regions.forEach(function (region) {
        if (!isRecord(region)) { return; }
        var sides = ["left", "top", "right", "bottom"].map(function (side) { return Number(region[side]); });
        if (!sides.every(isFinite)) { return; }
        var methods = Array.isArray(region.methods) && region.methods.length ? region.methods.join(", ") : "fused map";
        var sure = isNumber(region.confidence) ? " (confidence " + region.confidence.toFixed(2) + ")" : "";
        boxes.push({ left: sides[0], top: sides[1], right: sides[2], bottom: sides[3],
          label: "x " + sides[0] + "–" + sides[2] + ", y " + sides[1] + "–" + sides[3] + ": " + methods + sure });
      });
    });
    return boxes;
  }

  function mapNames(overlays) {
    var names = Object.keys(isRecord(overlays) ? overlays : {}).filter(function (name) {
      return typeof overlays[name] === "string";
    });
    names.sort(function (a, b) { return (a === "fused" ? 0 : 1) - (b === "fused" ? 0 : 1); });
    return names;
  }

  function renderViewer(body, result, name) {
    var analysis = result.analysis;
    var part = section("Image and maps");
    body.appendChild(part);
    if (typeof result.image_url !== "string") {
      part.appendChild(el("p", "note", "The server sent no picture of the image."));
      return;
    }
    var id = body.parentNode.id;
    var figure = el("figure", "viewer");
    var stage = el("div", "stage");
    var base = el("img", "base");
    base.alt = "The analysed image, " + name +
      (isNumber(analysis.width) ? " (" + analysis.width + " x " + analysis.height + " pixels)" : "");
    stage.appendChild(base);
    figure.appendChild(stage);
    part.appendChild(figure);
    var loading = [blobUrl(result.image_url).then(function (url) { base.src = url; return base.decode(); })];

    var names = mapNames(result.overlays);
    var boxes = regionBoxes(analysis);
    var sources = {};
    if (names.length) {
      var overlay = el("img", "layer");
      overlay.alt = "Map overlay: " + (MAP_LABELS[names[0]] || names[0]);
      stage.appendChild(overlay);
      var controls = el("div", "controls");
      var pick = el("span");
      var selectLabel = el("label", null, "Map");
      selectLabel.htmlFor = id + "-map";
      var select = el("select", "map-select");
      select.id = id + "-map";
      names.forEach(function (mapName) {
        var option = el("option", null, MAP_LABELS[mapName] || mapName);
        option.value = mapName;
        select.appendChild(option);
      });
      pick.appendChild(selectLabel);
      pick.appendChild(select);
      controls.appendChild(pick);

      var slide = el("span");
      var sliderLabel = el("label", null, "Overlay opacity");
      sliderLabel.htmlFor = id + "-opacity";
      var slider = el("input", "opacity");
      slider.type = "range";
      slider.id = id + "-opacity";
      slider.min = "0";
      slider.max = "1";
      slider.step = "0.05";
      slider.value = "0.6";
      var shown = el("output", "opacity-value");
      shown.htmlFor = slider.id;
      slider.setAttribute("aria-describedby", id + "-opacity-value");
      shown.id = id + "-opacity-value";
      slide.appendChild(sliderLabel);
      slide.appendChild(slider);
      slide.appendChild(shown);
      controls.appendChild(slide);
      var setOpacity = function () {
        overlay.style.opacity = slider.value;
        shown.textContent = Math.round(Number(slider.value) * 100) + " %";
      };
      slider.addEventListener("input", setOpacity);
      setOpacity();

      var showMap = function () {
        var mapName = select.value;
        overlay.alt = "Map overlay: " + (MAP_LABELS[mapName] || mapName);
        if (!sources[mapName]) {
          sources[mapName] = blobUrl(result.overlays[mapName]);
        }
        return sources[mapName].then(function (url) {
          if (select.value === mapName) { overlay.src = url; }
          return overlay.decode();
        }).then(function () { stage.setAttribute("data-map", mapName); });
      };
      select.addEventListener("change", function () {
        stage.removeAttribute("data-map");
        showMap().catch(function (error) { part.appendChild(el("p", "note", "The map could not be loaded: " + error.message)); });
      });
      loading.push(showMap());
      figure.appendChild(controls);
    }
    if (boxes.length && isNumber(analysis.width) && isNumber(analysis.height)) {
      var svg = document.createElementNS(SVG, "svg");
      svg.setAttribute("viewBox", "0 0 " + analysis.width + " " + analysis.height);
      svg.setAttribute("preserveAspectRatio", "none");
      svg.setAttribute("role", "img");
      svg.setAttribute("aria-label", boxes.length + " region(s) found by localization");
      svg.setAttribute("class", "boxes");
      boxes.forEach(function (box) {
        var rect = document.createElementNS(SVG, "rect");
        rect.setAttribute("x", box.left);
        rect.setAttribute("y", box.top);
        rect.setAttribute("width", Math.max(0, box.right - box.left));
        rect.setAttribute("height", Math.max(0, box.bottom - box.top));
        var title = document.createElementNS(SVG, "title");
        title.textContent = box.label;
        rect.appendChild(title);
        svg.appendChild(rect);
      });
      stage.appendChild(svg);
      var toggleBox = el("span");
      var toggle = el("input", "show-boxes");
      toggle.type = "checkbox";
      toggle.id = id + "-boxes";
      toggle.checked = true;
      var toggleLabel = el("label", null, "Region boxes");
      toggleLabel.htmlFor = toggle.id;
      toggle.addEventListener("change", function () { svg.style.display = toggle.checked ? "" : "none"; });
      toggleBox.appendChild(toggle);
      toggleBox.appendChild(document.createTextNode(" "));
      toggleBox.appendChild(toggleLabel);
      (figure.querySelector(".controls") || figure).appendChild(toggleBox);
    }
    figure.appendChild(el("figcaption", null, "Yellow is most suspicious, dark is nothing unusual." +
      (boxes.length ? " Yellow outlines: the regions of the localization evidence." : "") +
      " A map is a cue for a person to look at, not a verdict."));
    Promise.all(loading).then(function () {
      stage.setAttribute("data-loaded", "true");
    }).catch(function (error) {
      part.appendChild(el("p", "note", "The picture could not be loaded: " + error.message));
    });
  }

  function renderEvidence(body, analysis) {
    var part = section("Evidence");
    var items = evidenceItems(analysis).slice();
    items.sort(function (a, b) {
      var noneA = (a.points_to || "none") === "none" ? 1 : 0;
      var noneB = (b.points_to || "none") === "none" ? 1 : 0;
      return noneA - noneB || strengthOf(b) - strengthOf(a);
    });
    if (!items.length) {
      part.appendChild(el("p", null, "No evidence was recorded."));
      body.appendChild(part);
      return;
    }
    var table = el("table", "evidence");
    var head = el("thead");
    var headRow = el("tr");
    ["source", "points to", "strength", "finding"].forEach(function (title) {
      var cell = el("th", null, title);
      cell.scope = "col";
      headRow.appendChild(cell);
    });
    head.appendChild(headRow);
    table.appendChild(head);
    var rows = el("tbody");
    items.forEach(function (item) {
      var pointsTo = String(item.points_to || "none");
      var strength = strengthOf(item);
      var row = el("tr");
      row.appendChild(el("td", "mono", item.source || ""));
      var pointCell = el("td");
      var known = Object.prototype.hasOwnProperty.call(VERDICTS, pointsTo);
      pointCell.appendChild(el("span", pointsTo === "none" ? "chip none" : "chip points-" + (known ? pointsTo : "other"), pointsTo));
      row.appendChild(pointCell);
      var strengthCell = el("td");
      var bar = el("span", "bar points-" + (known ? pointsTo : "other"));
      bar.setAttribute("role", "meter");
      bar.setAttribute("aria-valuemin", "0");
      bar.setAttribute("aria-valuemax", "1");
      bar.setAttribute("aria-valuenow", strength.toFixed(2));
      bar.setAttribute("aria-label", "strength");
      var fill = el("span");
      fill.style.width = Math.round(strength * 100) + "%";
      bar.appendChild(fill);
      strengthCell.appendChild(bar);
      strengthCell.appendChild(el("span", "strength-number", strength.toFixed(2)));
      row.appendChild(strengthCell);
      var findingCell = el("td", null, item.finding || "");
      if (item.detail) { findingCell.appendChild(el("p", "reading", item.detail)); }
      if (isRecord(item.data) && Object.keys(item.data).length) {
        var details = el("details");
        details.appendChild(el("summary", null, "data"));
        var json = JSON.stringify(item.data, null, 1);
        if (json.length > MAX_DATA_CHARS) { json = json.slice(0, MAX_DATA_CHARS) + "\n… (cut short)"; }
        details.appendChild(el("pre", null, json));
        findingCell.appendChild(details);
      }
      row.appendChild(findingCell);
      rows.appendChild(row);
    });
    table.appendChild(rows);
    part.appendChild(table);
    body.appendChild(part);
  }

  function renderMetadata(body, analysis) {
    var part = section("Metadata and provenance");
    var tables = el("div", "tables");
    evidenceItems(analysis).forEach(function (item) {
      if (PROVENANCE_SOURCES.indexOf(item.source) < 0 || !isRecord(item.data) || !Object.keys(item.data).length) { return; }
      var rows = flatten(item.data, "");
      var box = el("div");
      box.appendChild(el("h4", null, item.source));
      var table = el("table");
      var tbody = el("tbody");
      rows.slice(0, MAX_TABLE_ROWS).forEach(function (pair) {
        var row = el("tr");
        row.appendChild(el("td", null, pair[0]));
        row.appendChild(el("td", null, pair[1]));
        tbody.appendChild(row);
      });
      if (rows.length > MAX_TABLE_ROWS) {
        var more = el("tr");
        var cell = el("td", null, "… " + (rows.length - MAX_TABLE_ROWS) + " more (see the evidence data)");
        cell.colSpan = 2;
        more.appendChild(cell);
        tbody.appendChild(more);
      }
      table.appendChild(tbody);
      box.appendChild(table);
      tables.appendChild(box);
    });
    if (tables.childNodes.length) {
      part.appendChild(tables);
    } else {
      part.appendChild(el("p", null, "The file carries no metadata or provenance records that were read."));
    }
    body.appendChild(part);
  }

  function openReport(event) {
    if (!apiKey()) { return; } // a plain link: nothing to add
    event.preventDefault();
    var link = event.currentTarget;
    var opened = window.open("", "_blank");
    fetch(link.href, { headers: authHeaders(), credentials: "same-origin" }).then(function (response) {
      if (!response.ok) {
        return readJson(response).then(function (body) { throw new Error(errorSentence(response, body)); });
      }
      return response.blob();
    }).then(function (blob) {
      var url = URL.createObjectURL(new Blob([blob], { type: "text/html" }));
      if (opened) { opened.opener = null; opened.location.href = url; } else { window.location.href = url; }
    }).catch(function (error) {
      if (opened) { opened.close(); }
      link.parentNode.appendChild(el("span", "note inline-note", " The report could not be opened: " + error.message));
    });
  }

  function renderFile(body, result, analysis) {
    var part = section("File");
    part.appendChild(facts([
      ["SHA-256", analysis.sha256 || "", "mono sha256"],
      ["format", analysis.format || ""],
      ["size", isNumber(analysis.width) ? analysis.width + " x " + analysis.height + " pixels" : ""],
      ["analysis", result.id || "", "mono"]
    ]));
    if (typeof result.report_url === "string") {
      var line = el("p", "report-line");
      var link = el("a", "report-link", "The full report (one HTML file)");
      link.href = result.report_url;
      link.target = "_blank";
      link.rel = "noopener";
      link.addEventListener("click", openReport);
      line.appendChild(link);
      part.appendChild(line);
    }
    body.appendChild(part);
  }

  function renderResult(card, result, name) {
    var analysis = isRecord(result) && isRecord(result.analysis) ? result.analysis : null;
    if (!analysis) {
      showError(card, "The server's answer holds no analysis.");
      return;
    }
    renderBanner(card, analysis);
    var body = card.querySelector(".card-body");
    body.textContent = "";
    if (isRecord(analysis.error)) {
      body.appendChild(el("p", "error-message", analysis.error.message || "The image could not be analysed."));
      body.appendChild(facts([["error type", analysis.error.type || "", "mono"]]));
      renderFile(body, result, analysis);
      return;
    }
    renderSummary(body, analysis);
    renderViewer(body, result, name);
    renderEvidence(body, analysis);
    renderMetadata(body, analysis);
    renderFile(body, result, analysis);
  }

  // ---- the queue -----------------------------------------------------------------------------------

  function analyse(job) {
    var form = new FormData();
    form.append("file", job.file, job.file.name || "upload");
    var url = "/v1/analyze" + (job.localize ? "?localize=true" : "");
    setStatus(job.card, "Analysing…");
    job.card.setAttribute("aria-busy", "true");
    return fetch(url, { method: "POST", body: form, headers: authHeaders(), credentials: "same-origin" })
      .then(function (response) {
        return readJson(response).then(function (body) {
          if (!response.ok) { throw new Error(errorSentence(response, body)); }
          renderResult(job.card, body, job.file.name || "(no file name)");
          if (isRecord(body.analysis) && body.analysis.verdict === "error") { counts.failed += 1; }
        });
      })
      .catch(function (error) {
        counts.failed += 1;
        var message = error instanceof TypeError ? "The server could not be reached (" + error.message + ")." : error.message;
        showError(job.card, message);
      })
      .then(function () {
        job.card.removeAttribute("aria-busy");
        counts.done += 1;
      });
  }

  function pump() {
    while (running < PARALLEL && queue.length) {
      var job = queue.shift();
      running += 1;
      showProgress(job.file.name);
      analyse(job).then(function () {
        running -= 1;
        showProgress("");
        pump();
      });
    }
  }

  function addFiles(files) {
    Array.prototype.forEach.call(files, function (file) {
      counts.total += 1;
      queue.push({ file: file, card: newCard(file), localize: localizeBox.checked });
    });
    showProgress("");
    pump();
  }

  // ---- wiring --------------------------------------------------------------------------------------

  function start() {
    keyInput = document.getElementById("api-key");
    localizeBox = document.getElementById("localize");
    fileInput = document.getElementById("file-input");
    dropZone = document.getElementById("drop-zone");
    progress = document.getElementById("progress");
    results = document.getElementById("results");
    try {
      keyInput.value = window.sessionStorage.getItem(KEY_STORE) || "";
    } catch (error) { /* no session storage: the key lasts as long as the page */ }
    keyInput.addEventListener("input", function () {
      try {
        if (apiKey()) { window.sessionStorage.setItem(KEY_STORE, apiKey()); } else { window.sessionStorage.removeItem(KEY_STORE); }
      } catch (error) { /* ignored, as above */ }
    });
    fileInput.addEventListener("change", function () {
      if (fileInput.files && fileInput.files.length) { addFiles(fileInput.files); }
      fileInput.value = "";
    });
    dropZone.addEventListener("click", function () { fileInput.click(); });
    ["dragenter", "dragover"].forEach(function (type) {
      dropZone.addEventListener(type, function (event) {
        event.preventDefault();
        dropZone.classList.add("dragging");
      });
    });
    dropZone.addEventListener("dragleave", function () { dropZone.classList.remove("dragging"); });
    dropZone.addEventListener("drop", function (event) {
      event.preventDefault();
      dropZone.classList.remove("dragging");
      if (event.dataTransfer && event.dataTransfer.files.length) { addFiles(event.dataTransfer.files); }
    });
    // a file dropped next to the zone is not opened by the browser in place of this page
    ["dragover", "drop"].forEach(function (type) {
      document.addEventListener(type, function (event) { event.preventDefault(); });
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
