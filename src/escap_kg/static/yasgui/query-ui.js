/*
 * escap-kg query UI: sets YASGUI up from the JSON blocks of the page (no inline script, so a
 * Content-Security-Policy of script-src 'self' is enough). Part of escap-kg, not of YASGUI.
 *
 * The page gives:
 *   <div id="yasgui" data-endpoint="/sparql" data-storage-key="...">
 *   <script type="application/json" id="query-ui-prefixes">{"ekg": "https://...#", ...}</script>
 *   <script type="application/json" id="query-ui-examples">
 *     [{"id": "example-01-...", "name": "Which ...?", "title": "Which ... (in full)?", "query": "..."}]
 *   <script type="application/json" id="query-ui-links">[["https://.../id", "/id"], ...]</script>
 *   <p class="query-ui-note" data-tab="example-17-..." hidden>: shown while that tab is active.
 */
(function () {
  "use strict";

  var STORAGE_PREFIX = "escap-kg-query-ui-";
  var DEFAULT_PREFIXES = ["ekg", "rdf", "rdfs", "skos", "dcterms"];

  function readJson(id) {
    var element = document.getElementById(id);
    return element ? JSON.parse(element.textContent) : null;
  }

  // Drop what an earlier catalogue left in localStorage: its tabs are under another key.
  function forgetOldSessions(currentKey) {
    try {
      var stale = [];
      for (var i = 0; i < window.localStorage.length; i++) {
        var key = window.localStorage.key(i);
        if (key && key.indexOf(STORAGE_PREFIX) === 0 && key.indexOf(currentKey + "_") !== 0) {
          stale.push(key);
        }
      }
      stale.forEach(function (key) { window.localStorage.removeItem(key); });
    } catch (err) {
      // localStorage may be disabled; YASGUI then keeps nothing either.
    }
  }

  // Our IRIs link to this server's pages, not to the resource base (w3id.org): the IRI prefix
  // is replaced by the local path when what follows it is a plain path or fragment.
  function localPath(href, links) {
    for (var i = 0; i < links.length; i++) {
      var prefix = links[i][0];
      if (href.indexOf(prefix) === 0) {
        var rest = href.slice(prefix.length);
        if (rest === "" || /^[\/#][A-Za-z0-9._~\/#%-]*$/.test(rest)) {
          return links[i][1] + rest;
        }
      }
    }
    return null;
  }

  function localiseLinks(root, links) {
    var anchors = root.querySelectorAll(".yasr a.iri:not([data-iri])");
    for (var i = 0; i < anchors.length; i++) {
      var href = anchors[i].getAttribute("href") || "";
      var path = localPath(href, links);
      if (path !== null) {
        anchors[i].setAttribute("data-iri", href);
        anchors[i].setAttribute("title", href);
        anchors[i].setAttribute("href", path);
      }
    }
  }

  // YASGUI shows a tab's name only; the title gives the whole question on hover.
  function titleTabs(root, titles) {
    var anchors = root.querySelectorAll(".tabsList .tab a[role=tab]");
    for (var i = 0; i < anchors.length; i++) {
      var title = titles[(anchors[i].getAttribute("href") || "").slice(1)];
      if (title && anchors[i].getAttribute("title") !== title) {
        anchors[i].setAttribute("title", title);
      }
    }
  }

  // The table's download button saves CSV named after the tab; for a catalogue query, name it
  // after the query's file, not after its (long) question. YASGUI sets this per tab.
  function nameDownloads(tab) {
    var yasr = tab && tab.getYasr ? tab.getYasr() : null;
    var id = tab ? tab.getId() : "";
    if (yasr && id.indexOf("example-") === 0) {
      yasr.config.getDownloadFileName = function () { return id.slice("example-".length); };
    }
  }

  // Accessibility repairs of YASGUI's markup (WCAG 2.1 A and AA, as axe-core checks it), made
  // again whenever YASGUI redraws:
  // - its form fields have no label: the endpoint box, the query editor's hidden textarea, the
  //   box that renames a tab and the results' page size (WCAG 1.3.1, 4.1.2);
  // - CodeMirror's scrolling box takes no focus (tabindex -1) and holds nothing focusable (its
  //   textarea sits outside it), so a keyboard cannot scroll it (WCAG 2.1.1).
  function repairYasgui(root) {
    var fields = [
      [".controlbar input.autocomplete", "SPARQL endpoint"],
      [".yasqe .CodeMirror textarea", "SPARQL query"],
      [".tabsList .tab input", "Name of the tab"],
      [".yasr select.tableSizer", "Page size"],
    ];
    fields.forEach(function (field) {
      var inputs = root.querySelectorAll(field[0] + ":not([aria-label])");
      for (var i = 0; i < inputs.length; i++) {
        inputs[i].setAttribute("aria-label", field[1]);
      }
    });
    var editors = root.querySelectorAll(".yasqe .CodeMirror");
    for (var k = 0; k < editors.length; k++) {
      var editor = editors[k].CodeMirror;
      if (editor && !editor.state.escapKgTabOut) {
        editor.state.escapKgTabOut = true;
        editor.on("keydown", tabOut);
      }
    }
    var scrollers = root.querySelectorAll(".yasqe .CodeMirror-scroll:not([role])");
    for (var j = 0; j < scrollers.length; j++) {
      scrollers[j].setAttribute("tabindex", "0");
      scrollers[j].setAttribute("role", "region");
      scrollers[j].setAttribute("aria-label", "The query's text, to scroll");
    }
  }

  // In the query editor Tab indents, as CodeMirror has it, so the keyboard could not leave the
  // editor (WCAG 2.1.2, no keyboard trap): Escape, then Tab (or Shift+Tab), moves the focus on
  // as anywhere else. The page says so above the editor.
  var MODIFIERS = ["Shift", "Control", "Alt", "Meta"];
  function tabOut(editor, event) {
    if (MODIFIERS.indexOf(event.key) >= 0) {
      return;
    }
    if (event.key === "Tab" && editor.state.escapKgLeaving) {
      event.codemirrorIgnore = true; // CodeMirror leaves the key to the browser
    }
    editor.state.escapKgLeaving = event.key === "Escape";
  }

  // YASGUI puts its "add a tab" button inside the tab list, where only tabs may be (ARIA
  // tablist; WCAG 4.1.2): move it out, beside the list. With its reference cleared YASGUI adds
  // new tabs at the end of the list, as it would have before the button.
  function moveAddTabButton(yasgui) {
    var tabList = yasgui.tabElements;
    var button = tabList && tabList.addTabEl;
    var list = button && button.parentNode;
    if (!list || !list.classList.contains("tabsList")) {
      return;
    }
    var bar = document.createElement("div");
    bar.className = "query-ui-tabbar";
    list.parentNode.insertBefore(bar, list);
    bar.appendChild(list);
    bar.appendChild(button);
    tabList.addTabEl = null;
  }

  function showNote(tabId) {
    var notes = document.querySelectorAll(".query-ui-note[data-tab]");
    for (var i = 0; i < notes.length; i++) {
      notes[i].hidden = notes[i].getAttribute("data-tab") !== tabId;
    }
  }

  function defaultQuery(prefixes) {
    var lines = DEFAULT_PREFIXES.filter(function (p) { return prefixes[p]; }).map(function (p) {
      return "PREFIX " + p + ": <" + prefixes[p] + ">";
    });
    lines.push("", "SELECT * WHERE {", "  ?s ?p ?o", "}", "LIMIT 10");
    return lines.join("\n");
  }

  function start() {
    var root = document.getElementById("yasgui");
    var prefixes = readJson("query-ui-prefixes") || {};
    var examples = readJson("query-ui-examples") || [];
    var links = readJson("query-ui-links") || [];
    var titles = {};
    examples.forEach(function (example) { titles[example.id] = example.title; });
    // An absolute URL, whatever the server put in data-endpoint (a path such as /sparql).
    var endpoint = new URL(root.getAttribute("data-endpoint") || "/sparql", window.location.href).href;
    var storageKey = root.getAttribute("data-storage-key") || "";
    var Yasqe = Yasgui.Yasqe;

    // The table of prefixes a query may use undeclared, filled from the JSON block (the page's
    // HTML holds no namespace IRI outside it).
    var rows = document.getElementById("query-ui-prefix-rows");
    Object.keys(prefixes).sort().forEach(function (p) {
      var row = rows ? rows.insertRow() : null;
      if (row) {
        row.insertCell().textContent = p + ":";
        row.insertCell().textContent = prefixes[p];
      }
    });

    // Prefix autocompletion offers our prefixes, not YASQE's bundled list, and never asks
    // prefix.cc (prefixCcApi stays null); persistenceId null: the list is not kept in storage.
    var prefixLines = Object.keys(prefixes).sort().map(function (p) {
      return p + ": <" + prefixes[p] + ">";
    });
    Yasqe.Autocompleters.prefixes = Object.assign({}, Yasqe.Autocompleters.prefixes, {
      get: prefixLines,
      persistenceId: null,
    });
    // The "property" and "class" autocompleters ask lov.linkeddata.es: leave them off, and make
    // them harmless should anything turn them on.
    ["property", "class"].forEach(function (name) {
      if (Yasqe.Autocompleters[name]) {
        Yasqe.Autocompleters[name] = Object.assign({}, Yasqe.Autocompleters[name], {
          get: function () { return Promise.resolve([]); },
        });
      }
    });
    // Set on the shared defaults: YASGUI and YASQE merge arrays index by index, so a shorter
    // list given in the config would not remove the others.
    Yasqe.defaults.autocompleters = ["variables", "prefixes"];
    Yasqe.defaults.prefixCcApi = null;
    Yasqe.defaults.value = defaultQuery(prefixes);

    if (storageKey) {
      forgetOldSessions(storageKey);
    }
    var requestConfig = { endpoint: endpoint, method: "POST" };
    var yasgui = new Yasgui(root, {
      requestConfig: requestConfig,
      // Tabs are kept across page loads under a key that changes with the catalogue, so a new
      // or changed example query always shows; no key, no persistence.
      persistenceId: storageKey || null,
      autoAddOnInit: false,
      copyEndpointOnNewTab: true,
      corsProxy: undefined,
      // The endpoint box suggests this endpoint only: no list of remote endpoints.
      endpointCatalogueOptions: {
        getData: function () { return [{ endpoint: endpoint }]; },
      },
      yasr: { prefixes: prefixes },
    });

    if (yasgui.persistentConfig.getTabs().length === 0) {
      var first = null;
      examples.forEach(function (example) {
        var tab = yasgui.addTab(first === null, {
          id: example.id,
          name: example.name,
          yasqe: { value: example.query },
          requestConfig: requestConfig,
        });
        if (first === null) {
          first = tab.getId();
        }
      });
      if (first === null) {
        first = yasgui.addTab(true, { requestConfig: requestConfig }).getId();
      }
      yasgui.markTabSelected(first);
    }
    yasgui.on("tabSelect", function (instance, tabId) { showNote(tabId); });
    yasgui.on("query", function (instance, tab) { nameDownloads(tab); });
    var current = yasgui.getTab();
    showNote(current ? current.getId() : "");
    // Result tables and tab lists are redrawn often (paging, sorting, renaming): follow them.
    moveAddTabButton(yasgui);
    var observer = new MutationObserver(function () {
      localiseLinks(root, links);
      titleTabs(root, titles);
      repairYasgui(root);
    });
    observer.observe(root, { childList: true, subtree: true });
    localiseLinks(root, links);
    titleTabs(root, titles);
    repairYasgui(root);
    window.escapKgYasgui = yasgui;
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
