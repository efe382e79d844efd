/*
 * escap-kg query UI: sets YASGUI up from the JSON blocks of the page (no inline script, so a
 * Content-Security-Policy of script-src 'self' is enough). Part of escap-kg, not of YASGUI.
 *
 * The page gives:
 *   <main id="yasgui" data-endpoint="/sparql" data-storage-key="...">
 *   <script type="application/json" id="query-ui-prefixes">{"ekg": "https://...#", ...}</script>
 *   <script type="application/json" id="query-ui-examples">[{"id": "...", "query": "..."}]</script>
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
          name: example.id,
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
    window.escapKgYasgui = yasgui;
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
