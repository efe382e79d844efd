// Starts Swagger UI on the OpenAPI document named by the page, without inline script.
(function () {
  "use strict";

  // Swagger UI's code boxes (examples, response bodies) scroll but take no focus, so a keyboard
  // cannot scroll them (WCAG 2.1.1; axe-core's scrollable-region-focusable): give each the
  // focus, a role and a name, again whenever Swagger UI draws one.
  function focusableCode(root) {
    var boxes = root.querySelectorAll(".highlight-code > .microlight:not([tabindex])");
    for (var i = 0; i < boxes.length; i++) {
      boxes[i].setAttribute("tabindex", "0");
      boxes[i].setAttribute("role", "region");
      boxes[i].setAttribute("aria-label", "Code, to scroll");
    }
  }

  window.addEventListener("load", function () {
    var root = document.getElementById("swagger-ui");
    window.ui = SwaggerUIBundle({
      url: root.getAttribute("data-openapi"),
      dom_id: "#swagger-ui",
      // No deep links: Swagger UI draws each operation's link inside the button that opens
      // it, a control inside a control that keyboards and screen readers cannot tell apart
      // (WCAG 4.1.2; axe-core's nested-interactive).
      deepLinking: false,
      // Code as plain text: the highlighter's colours are inline styles our stylesheet cannot
      // change, and most are below 4.5:1 on its dark background (WCAG 1.4.3).
      syntaxHighlight: false,
      presets: [SwaggerUIBundle.presets.apis],
      layout: "BaseLayout",
    });
    new MutationObserver(function () { focusableCode(root); }).observe(root, {
      childList: true,
      subtree: true,
    });
  });
})();
