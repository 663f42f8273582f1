// The listener's captions, for a phone held in a dim room: large text in a dark theme (both
// adjustable and remembered), the latest line kept in view unless the reader scrolled back, a line
// still being spoken replaced where it stands when its final words come, a plain notice on a line
// that could not be translated, and no motion for those who asked for none.
//
// It renders what the client's `caption` event hands it (in seq order, each once, a line slower
// than the reorder window marked late and put in its place: clients/js/caption-order.js); the
// lines it keeps are a CaptionLines from the same module.
import { CaptionLines } from "./client/caption-order.js";

const SIZE_KEY = "liveTranslation.captionSize";
const THEME_KEY = "liveTranslation.theme";
/** Caption sizes in rem, smallest first; the default is readable at arm's length. */
export const CAPTION_SIZES = Object.freeze([1.25, 1.5, 1.75, 2, 2.5, 3, 3.5, 4]);
const DEFAULT_SIZE_INDEX = 3;
// Within this many pixels of the bottom counts as "reading the latest line".
const FOLLOW_SLACK_PX = 48;

export const TEXTS = Object.freeze({
  untranslated: "Not translated: shown as spoken.",
  placeholder: "Captions will appear here when the speaker talks.",
  size: "Caption size {percent} %",
  latest: "Show the latest line",
});

function read(storage, key) {
  try {
    return storage?.getItem(key) ?? null;
  } catch {
    return null; // storage blocked: defaults, everything else works
  }
}

function write(storage, key, value) {
  try {
    storage?.setItem(key, value);
  } catch {
    // storage blocked
  }
}

/**
 * @param {{
 *   log: HTMLElement,            // the scrolling area the lines go into
 *   smaller?: HTMLButtonElement, larger?: HTMLButtonElement, sizeStatus?: HTMLElement,
 *   theme?: HTMLButtonElement,   // toggles dark and light (aria-pressed: dark)
 *   latest?: HTMLButtonElement,  // shown when the reader scrolled back and a new line came
 *   root?: HTMLElement,          // carries data-theme (default: <html>)
 *   storage?: Storage, matchMedia?: (query: string) => MediaQueryList, keep?: number,
 * }} parts
 */
export function createCaptionsView(parts) {
  const { log, smaller, larger, sizeStatus, theme, latest } = parts;
  const document = log.ownerDocument;
  const root = parts.root ?? document.documentElement;
  const storage = parts.storage ?? globalThis.localStorage;
  const matchMedia = parts.matchMedia ?? globalThis.matchMedia?.bind(globalThis);
  const lines = new CaptionLines({ keep: parts.keep });
  const elements = new Map(); // lineId -> <p>
  let sourceLanguage = "";
  let following = true;

  const reducedMotion = () => Boolean(matchMedia?.("(prefers-reduced-motion: reduce)").matches);

  // --- size
  const storedSize = Number(read(storage, SIZE_KEY));
  let sizeIndex = CAPTION_SIZES.includes(storedSize) ? CAPTION_SIZES.indexOf(storedSize) : DEFAULT_SIZE_INDEX;
  function applySize() {
    const rem = CAPTION_SIZES[sizeIndex];
    log.style.setProperty("--caption-size", `${rem}rem`);
    if (smaller) smaller.disabled = sizeIndex === 0;
    if (larger) larger.disabled = sizeIndex === CAPTION_SIZES.length - 1;
    if (sizeStatus) sizeStatus.textContent = TEXTS.size.replace("{percent}", String(Math.round((rem / CAPTION_SIZES[DEFAULT_SIZE_INDEX]) * 100)));
    write(storage, SIZE_KEY, String(rem));
    if (following) scrollToLatest();
  }
  smaller?.addEventListener("click", () => {
    sizeIndex = Math.max(0, sizeIndex - 1);
    applySize();
  });
  larger?.addEventListener("click", () => {
    sizeIndex = Math.min(CAPTION_SIZES.length - 1, sizeIndex + 1);
    applySize();
  });

  // --- theme: dark unless the reader chose light (the page is read in a dim room)
  let dark = read(storage, THEME_KEY) !== "light";
  function applyTheme() {
    root.dataset.theme = dark ? "dark" : "light";
    theme?.setAttribute("aria-pressed", String(dark));
    document.querySelector('meta[name="theme-color"]')?.setAttribute("content", dark ? "#000000" : "#ffffff");
  }
  theme?.addEventListener("click", () => {
    dark = !dark;
    write(storage, THEME_KEY, dark ? "dark" : "light");
    applyTheme();
  });

  // --- keeping the latest line in view
  function atBottom() {
    return log.scrollHeight - log.scrollTop - log.clientHeight <= FOLLOW_SLACK_PX;
  }
  function scrollToLatest() {
    log.scrollTo({ top: log.scrollHeight, behavior: reducedMotion() ? "auto" : "smooth" });
    following = true;
    if (latest) latest.hidden = true;
  }
  log.addEventListener("scroll", () => {
    following = atBottom();
    if (following && latest) latest.hidden = true;
  });
  latest?.addEventListener("click", () => scrollToLatest());

  function placeholder() {
    const note = document.createElement("p");
    note.className = "placeholder";
    note.textContent = TEXTS.placeholder;
    return note;
  }

  function render(caption, element) {
    element.dataset.lineId = caption.lineId;
    element.dataset.seq = String(caption.seq);
    element.classList.toggle("partial", !caption.final);
    element.classList.toggle("untranslated", caption.untranslated);
    // An untranslated line is in the speaker's language: screen readers must read it as such.
    element.lang = caption.untranslated ? sourceLanguage || caption.language || "" : caption.language || "";
    const text = document.createElement("span");
    text.className = "caption-text";
    text.textContent = caption.text;
    const children = [text];
    if (caption.untranslated) {
      const note = document.createElement("span");
      note.className = "caption-note";
      note.lang = document.documentElement.lang || "en";
      note.textContent = TEXTS.untranslated;
      children.push(note);
    }
    element.replaceChildren(...children);
  }

  applySize();
  applyTheme();

  return {
    /** The session's source language: an untranslated line is marked as being in it. */
    setSourceLanguage(language) {
      sourceLanguage = language ?? "";
    },

    /** Shows a caption (a new line, or the final words of one still being spoken). */
    show(caption) {
      const wasFollowing = following || atBottom();
      const { replaced, dropped } = lines.apply(caption);
      log.querySelector(".placeholder")?.remove();
      let element = elements.get(caption.lineId);
      if (!replaced || !element) {
        element = document.createElement("p");
        element.className = "caption-line";
        elements.set(caption.lineId, element);
        // A late line (slower than the reorder window) goes in its place by seq, not at the end.
        const next = caption.late ? elements.get(lines.after(caption.lineId)) : undefined;
        if (next) log.insertBefore(element, next);
        else log.append(element);
      }
      render(caption, element);
      for (const lineId of dropped) {
        elements.get(lineId)?.remove();
        elements.delete(lineId);
      }
      if (wasFollowing) scrollToLatest();
      else if (latest) latest.hidden = false;
    },

    /** Shows the lines a reload kept (oldest first) in place of what is there. */
    restore(captions) {
      this.clear();
      for (const caption of captions) this.show(caption);
    },

    /** Empties the view (a new session). */
    clear() {
      lines.clear();
      elements.clear();
      log.replaceChildren(placeholder());
      following = true;
      if (latest) latest.hidden = true;
    },

    /** The lines shown, oldest first (for tests and for carrying over a rejoin). */
    get lines() {
      return lines.lines;
    },
  };
}
