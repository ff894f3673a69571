// Starts Swagger UI on /api/v1/docs (templates/swagger_ui.html): the spec's URL and the settings
// (OPENAPI_SWAGGER_UI_CONFIG) come from the container's data attributes, so the page needs no
// inline script. Nothing here asks another host for anything: no validator badge, no remote specs.
(function () {
  "use strict";
  var node = document.getElementById("swagger-ui");
  var config = JSON.parse(node.getAttribute("data-config") || "{}");
  config.url = node.getAttribute("data-spec-url");
  config.domNode = node;
  config.validatorUrl = null; // the default badge would ask validator.swagger.io
  config.queryConfigEnabled = false; // ?url=... must not point the page at another server's spec
  window.ui = window.SwaggerUIBundle(config);
})();
