/* Loaded on pages with ipywidgets, between RequireJS and the ipywidgets HTML manager
 * (added by book/_ext/offline_assets.py). It fixes two faults of the embedded widget manager:
 *
 * 1. The manager's bundles are named AMD modules ("@jupyter-widgets/base", ...). RequireJS gives
 *    each the URL baseUrl + name, that is, a path relative to the *page*, and webpack loads the
 *    bundled icon fonts from that folder (book/@jupyter-widgets/html-manager/dist/<hash>.woff2,
 *    which does not exist). Map the names onto the folder the bundle really lives in
 *    (data-dist-url, relative to this script).
 * 2. The theme's Font Awesome script replaces every <i class="fa ..."> that appears in the page by
 *    an <svg>, widgets included; the Play widget then finds no <i> to update and throws a
 *    TypeError on every change of its value, which stops a linked slider from updating the rest
 *    (the image never changed). On widget pages, let Font Awesome convert the theme's icons once
 *    (it runs deferred, after this script) but not watch the DOM: the widgets draw their icons
 *    with the Font Awesome 4 web font bundled with the manager (fonts found thanks to 1.).
 * 3. Widget labels are typeset with the MathJax 2 API (MathJax.Hub.Queue), which MathJax 3, the
 *    version Sphinx loads, does not have: every widget with a description threw a TypeError.
 *    Provide Hub.Queue(["Typeset", MathJax.Hub, element]) on top of MathJax 3's typesetPromise.
 */
(function () {
  "use strict";
  var script = document.currentScript;
  var dist = new URL(script.getAttribute("data-dist-url") || "html-manager/dist/", script.src).href;
  if (dist.charAt(dist.length - 1) !== "/") dist += "/";

  if (window.require && typeof window.require.config === "function") {
    var paths = {"@jupyter-widgets/html-manager/dist": dist.slice(0, -1)};
    ["base", "base7", "controls", "controls7", "html-manager"].forEach(function (name) {
      paths["@jupyter-widgets/" + name] = dist + name;
    });
    window.require.config({paths: paths});
  }

  window.FontAwesomeConfig = Object.assign({}, window.FontAwesomeConfig, {observeMutations: false});

  function installMathJax2Shim() {
    var M = window.MathJax;
    if (!M || M.Hub || typeof M.version !== "string" || M.version.split(".")[0] !== "3") return;
    M.Hub = {
      Queue: function () {
        Array.prototype.forEach.call(arguments, function (job) {
          if (!Array.isArray(job) || job[0] !== "Typeset") return;
          var element = job[2];
          var ready = (M.startup && M.startup.promise) || Promise.resolve();
          ready.then(function () {
            return M.typesetPromise(element ? [element] : undefined);
          }).catch(function (err) {
            console.warn("MathJax could not typeset a widget label:", err);
          });
        });
      }
    };
  }
  // MathJax 3 is loaded with "defer": it exists by DOMContentLoaded, and widgets render on "load".
  installMathJax2Shim();
  document.addEventListener("DOMContentLoaded", installMathJax2Shim);
})();
