/* An appointment request form, put where this script's tag is (an iframe sized to fit the form). */
(function () {
  "use strict";
  var FORM_URL = {{ form_url }};
  var FORM_ORIGIN = {{ form_origin }};
  var TITLE = {{ title }};
  var MARK = "data-medspa-lead-form";

  // The tag that loaded this script; loaders that inject it (tag managers) may leave currentScript empty.
  var script = document.currentScript;
  if (!script) {
    var tags = document.querySelectorAll("script[src]");
    for (var i = 0; i < tags.length && !script; i++) {
      if (tags[i].src.indexOf({{ script_path }}) !== -1 && !tags[i].hasAttribute(MARK)) script = tags[i];
    }
  }
  if (!script || script.hasAttribute(MARK) || !script.parentNode) return;
  script.setAttribute(MARK, "");

  // The page the form is on, so the clinic knows where the lead came from.
  var page = String(window.location.href).split("#")[0];
  if (page.length > 500) page = window.location.origin + window.location.pathname;
  var src = FORM_URL + "?embed=1";
  if (/^https?:\/\//.test(page) && page.length <= 500) src += "&src=" + encodeURIComponent(page);

  var frame = document.createElement("iframe");
  frame.src = src;
  frame.title = TITLE;
  frame.setAttribute(MARK, "");
  frame.style.cssText = "display:block;width:100%;max-width:100%;height:760px;border:0;margin:0;background:transparent";
  script.parentNode.insertBefore(frame, script);

  // The form reports its height (and asks to be scrolled into view after sending); only this frame is heard.
  window.addEventListener("message", function (event) {
    var data = event.data;
    if (event.origin !== FORM_ORIGIN || event.source !== frame.contentWindow) return;
    if (!data || data.type !== "medspa-lead-form:height") return;
    var height = parseInt(data.height, 10);
    if (height > 0 && height < 20000) frame.style.height = height + "px";
    if (data.scroll && frame.getBoundingClientRect().top < 0) frame.scrollIntoView({block: "start"});
  });
})();
