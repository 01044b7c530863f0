// Swagger UI from the vendored bundle, without inline script: the OAuth2 password flow of the API
// (Authorize) posts to /api/auth/login; nothing is fetched from another origin (no validator badge).
"use strict";
(function () {
  var root = document.getElementById("swagger-ui");
  window.ui = window.SwaggerUIBundle({
    url: root.getAttribute("data-openapi-url"),
    dom_id: "#swagger-ui",
    layout: "BaseLayout",
    deepLinking: true,
    showExtensions: true,
    showCommonExtensions: true,
    persistAuthorization: false,
    validatorUrl: null,
    oauth2RedirectUrl: window.location.origin + "/docs/oauth2-redirect",
    presets: [window.SwaggerUIBundle.presets.apis],
  });
})();
