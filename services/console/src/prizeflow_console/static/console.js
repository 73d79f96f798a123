// Progress while waiting, without htmx too: a submitted form says so and cannot be sent twice by a double click.
document.addEventListener("submit", (event) => {
  const form = event.target;
  if (!(form instanceof HTMLFormElement) || event.defaultPrevented) return;
  document.body.classList.add("busy");
  form.setAttribute("aria-busy", "true");
  for (const button of form.querySelectorAll("button[type=submit], button:not([type])")) {
    button.setAttribute("aria-disabled", "true");
    window.setTimeout(() => { button.disabled = true; }, 0);
  }
});
// Back from the browser's page cache: nothing is in flight any more.
window.addEventListener("pageshow", () => {
  document.body.classList.remove("busy");
  for (const button of document.querySelectorAll("button[disabled]")) { button.disabled = false; button.removeAttribute("aria-disabled"); }
});
// htmx requests carry the CSRF token of the page's forms.
document.addEventListener("htmx:configRequest", (event) => {
  const input = document.querySelector("input[name=_csrf_token]");
  if (input) event.detail.headers["x-csrftoken"] = input.value;
});
