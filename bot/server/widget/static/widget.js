/*!
 * Bank-feed chat widget: the website chat for the QuickBooks Online bank-feed assistant.
 *
 * EMBEDDING: a config object and one script tag, anywhere in the page (best just before </body>):
 *
 *   <script>
 *     window.BankFeedChat = {
 *       serverUrl: "https://chat.example.com",  // the Rasa server (default: where widget.js came from)
 *       title: "Bank feed help",                // header of the chat panel
 *       subtitle: "Usually answers in seconds", // optional second header line
 *       primaryColor: "#108000",                // launcher, header, your own messages
 *       textColor: "#ffffff",                   // text on primaryColor
 *       startOpen: false,                       // open the panel on the first visit
 *       greeting: "Hi! ..."                     // optional first line of the assistant
 *     };
 *   </script>
 *   <script src="https://chat.example.com/chat/widget.js" defer></script>
 *
 * Pages with a Content-Security-Policy that forbids inline scripts put the config object in a file
 * of their own (see /chat/static/demo-config.js) loaded before widget.js. The policy must allow
 * serverUrl in script-src and style-src, and serverUrl plus its ws:/wss: form in connect-src.
 *
 * The widget loads its stylesheet (serverUrl + /chat/static/widget.css) and the Socket.IO client
 * (serverUrl + /chat/static/vendor/socket.io.min.js) itself and draws inside a shadow root, so the
 * page's CSS and the widget's never mix. Elements of the page with a `data-bankfeedchat-open`
 * attribute open the chat when clicked; from script: window.BankFeedChatWidget.open() / .close().
 *
 * HOW IT TALKS TO THE SERVER (Rasa socketio channel, session persistence on):
 *   - on every (re)connect: emit `session_request` {session_id}; the server answers `session_confirm`
 *     with the id to use. Ids are issued by the server (`web-<random>.<signature>`): it keeps one it
 *     issued and answers anything else (no id yet, an old or made-up one) with a fresh id. The widget
 *     stores the confirmed id in localStorage ("bankfeedchat:session") and sends it with every message
 *     and history request, so a reload or a later visit continues the same conversation.
 *   - the user's messages: emit `user_uttered` {message, session_id, metadata: {user_agent, capabilities, timezone, hour_cycle}}
 *     (timezone and hour_cycle: how this browser reads a time of day; bot/customer_time.py).
 *   - the bot's messages: `bot_uttered` {text} | {text, quick_replies} | {text, buttons}; hand-off
 *     messages {text, metadata: {handoff_event: agent_joined|agent_left|closed, agent_name}}, agent
 *     messages {text: "<name>: <words>", metadata: {sender: "agent", agent_name, agent_text}} and
 *     refusals {text, metadata: {error, retry_after}}: Rasa's message shape, our fields under metadata.
 *   - GET serverUrl/chat/history?session_id=... on load and after every reconnect: the conversation
 *     as the server stored it. It replaces what is shown (nothing missed during a network drop is
 *     lost; nothing is shown twice). Messages typed while disconnected wait in a queue (also kept in
 *     localStorage) and are sent, in order, once the connection and the history are back.
 *
 * BANK FILES (manual upload assistant): the paperclip button picks a bank export (.csv .qbo .qfx .ofx
 * .txt .qif) and POSTs it (multipart: file, sender = the session id, optional date_order) to
 * serverUrl/upload/analyse. The report comes back as an assistant message: the summary, the problems
 * with their row numbers, and one-time download links for the clean file(s). When the dates could be
 * read two ways, two buttons ask which, and the same file is sent again with date_order. These upload
 * lines exist only in this browser (localStorage, "bankfeedchat:uploads:<session>"): they are not
 * in the server's conversation history, so another browser or device doesn't show them, and after a
 * reload the date-order buttons can't resend the file (it is only kept in the tab's memory).
 *
 * Message text is always put in the page with textContent; only http(s) links become <a> elements.
 */
(() => {
  "use strict";

  if (window.__bankFeedChatLoaded) return; // the script was included twice
  window.__bankFeedChatLoaded = true;

  const SCRIPT = document.currentScript;
  const STORAGE_PREFIX = "bankfeedchat:";
  const KEYS = {
    session: STORAGE_PREFIX + "session",
    open: STORAGE_PREFIX + "open",
    clicks: (sid) => `${STORAGE_PREFIX}clicks:${sid}`,
    queue: (sid) => `${STORAGE_PREFIX}queue:${sid}`,
    uploads: (sid) => `${STORAGE_PREFIX}uploads:${sid}`,
  };
  const UPLOAD_ACCEPT = ".csv,.qbo,.qfx,.ofx,.txt,.qif";
  const UPLOAD_PROBLEMS_SHOWN = 8;
  const UPLOAD_LINK_TTL_S = 3600;
  const UPLOAD_MAX_BYTES = 20 * 1024 * 1024; // the server has its own (smaller) limit and says so
  const DATE_ORDER_HINTS = { MDY: "MM/DD", DMY: "DD/MM", YMD: "YYYY-MM-DD" };
  const SESSION_ID = /^[A-Za-z0-9_.-]{16,128}$/; // issued by the server, see session_confirm
  const TYPING_TIMEOUT_MS = 12000;
  const LATE_DELIVERY_MS = 8000;
  const MAX_MESSAGE_LENGTH = 2000;

  // ------------------------------------------------------------------ configuration

  function readConfig(raw) {
    const scriptOrigin = SCRIPT && SCRIPT.src ? new URL(SCRIPT.src, location.href).origin : location.origin;
    const serverUrl = String(raw.serverUrl || scriptOrigin).replace(/\/+$/, "");
    return {
      serverUrl,
      socketPath: typeof raw.socketPath === "string" ? raw.socketPath : "/socket.io",
      title: textOption(raw.title, "Bank feed help"),
      subtitle: textOption(raw.subtitle, "Fixes for QuickBooks bank-feed errors"),
      primaryColor: colorOption(raw.primaryColor, "#108000"),
      textColor: colorOption(raw.textColor, "#ffffff"),
      startOpen: raw.startOpen === true,
      greeting: textOption(
        raw.greeting,
        "Hi! I can help when your QuickBooks Online bank feed won't update. " +
          "Tell me the error (for example 102 or 103) and your bank.",
      ),
    };
  }

  function textOption(value, fallback) {
    return typeof value === "string" && value.trim() ? value.trim() : fallback;
  }

  function colorOption(value, fallback) {
    return typeof value === "string" && window.CSS && CSS.supports("color", value) ? value : fallback;
  }

  // ------------------------------------------------------------------ small utilities

  const storage = (() => {
    const memory = new Map(); // when localStorage is blocked (some privacy modes), the tab still works
    return {
      get(key) {
        try {
          return localStorage.getItem(key);
        } catch {
          return memory.has(key) ? memory.get(key) : null;
        }
      },
      set(key, value) {
        try {
          localStorage.setItem(key, value);
        } catch {
          memory.set(key, value);
        }
      },
      getJson(key, fallback) {
        try {
          const value = JSON.parse(this.get(key));
          return value === null ? fallback : value;
        } catch {
          return fallback;
        }
      },
      setJson(key, value) {
        this.set(key, JSON.stringify(value));
      },
      remove(key) {
        memory.delete(key);
        try {
          localStorage.removeItem(key);
        } catch {
          /* the memory copy is gone */
        }
      },
    };
  })();

  const tabStorage = {
    get(key) {
      try {
        return sessionStorage.getItem(key);
      } catch {
        return null;
      }
    },
    set(key, value) {
      try {
        sessionStorage.setItem(key, value);
      } catch {
        /* not important */
      }
    },
  };

  function randomId(length = 24) {
    const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-"; // 64 symbols
    const bytes = new Uint8Array(length);
    crypto.getRandomValues(bytes);
    return Array.from(bytes, (b) => alphabet[b & 63]).join("");
  }

  /** The session id the server confirmed last time, or "" (the server issues one on connect). */
  function loadSessionId() {
    const id = storage.get(KEYS.session);
    return id && SESSION_ID.test(id) ? id : "";
  }

  const nowSeconds = () => Date.now() / 1000;

  /** Creates an element: el("div", {class: "x", "aria-live": "polite"}, child, "text", ...). */
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === false || value === null || value === undefined) continue;
      if (name === "text") node.textContent = value;
      else node.setAttribute(name, value === true ? "" : String(value));
    }
    for (const child of children) if (child !== null && child !== undefined) node.append(child);
    return node;
  }

  const SVG_NS = "http://www.w3.org/2000/svg";
  const ICONS = {
    chat: ["M4 4h16a2 2 0 0 1 2 2v10a2 2 0 0 1-2 2H9l-5 4v-4a2 2 0 0 1-2-2V6a2 2 0 0 1 2-2z"],
    close: ["M6 6l12 12", "M18 6L6 18"],
    minimise: ["M6 12h12"],
    send: ["M4 12l16-8-6 16-2.5-6.5z", "M11.5 13.5L20 4"],
    clock: ["M12 7v5l3 2", "M12 3a9 9 0 1 0 0 18a9 9 0 1 0 0-18"],
    clip: ["M21.4 11.1l-9.2 9.2a6 6 0 0 1-8.5-8.5l9.2-9.2a4 4 0 0 1 5.7 5.7l-9.2 9.2a2 2 0 0 1-2.8-2.8l8.5-8.5"],
    file: ["M14 3H7a2 2 0 0 0-2 2v14a2 2 0 0 0 2 2h10a2 2 0 0 0 2-2V8z", "M14 3v5h5", "M12 11v6", "M9 14l3 3 3-3"],
  };

  function icon(name, size = 20) {
    const svg = document.createElementNS(SVG_NS, "svg");
    svg.setAttribute("viewBox", "0 0 24 24");
    svg.setAttribute("width", String(size));
    svg.setAttribute("height", String(size));
    svg.setAttribute("aria-hidden", "true");
    svg.setAttribute("focusable", "false");
    svg.setAttribute("class", `bfc-icon bfc-icon--${name}`);
    for (const d of ICONS[name]) {
      const path = document.createElementNS(SVG_NS, "path");
      path.setAttribute("d", d);
      svg.append(path);
    }
    return svg;
  }

  const timeFormat = new Intl.DateTimeFormat(undefined, { hour: "numeric", minute: "2-digit" });
  const dayFormat = new Intl.DateTimeFormat(undefined, { weekday: "long", day: "numeric", month: "long" });

  function dayLabel(date) {
    const today = new Date();
    const yesterday = new Date(today.getFullYear(), today.getMonth(), today.getDate() - 1);
    if (date.toDateString() === today.toDateString()) return "Today";
    if (date.toDateString() === yesterday.toDateString()) return "Yesterday";
    return dayFormat.format(date);
  }

  /** Text with its http(s) links as safe <a> elements; everything else stays plain text. */
  const URL_PATTERN = /\bhttps?:\/\/[^\s<>"'`]+/gi;

  function trimUrl(url) {
    const count = (s, ch) => s.split(ch).length - 1;
    for (;;) {
      const last = url.slice(-1);
      const opener = { ")": "(", "]": "[", "}": "{" }[last];
      if (/[.,;:!?'"]/.test(last) || (opener && count(url, last) > count(url, opener))) url = url.slice(0, -1);
      else return url;
    }
  }

  function linkify(text) {
    const fragment = document.createDocumentFragment();
    let last = 0;
    for (const match of text.matchAll(URL_PATTERN)) {
      const url = trimUrl(match[0]); // sentence punctuation and unbalanced brackets stay outside
      let parsed = null;
      try {
        parsed = new URL(url);
      } catch {
        parsed = null;
      }
      if (!parsed || (parsed.protocol !== "http:" && parsed.protocol !== "https:")) continue;
      fragment.append(text.slice(last, match.index));
      const link = el("a", { href: parsed.href, target: "_blank", rel: "noopener noreferrer", text: url });
      link.append(el("span", { class: "bfc-sr", text: " (opens in a new tab)" }));
      fragment.append(link);
      last = match.index + url.length;
    }
    fragment.append(text.slice(last));
    return fragment;
  }

  // ------------------------------------------------------------------ the conversation model

  /*
   * An entry is one line of the conversation as shown:
   *   {id, seq, sender: "user"|"bot"|"agent"|"banner", text, buttons: [{title, payload}], ts (seconds),
   *    origin: "history"|"live"|"local", agentName?, event? (banners), chosen? (the reply picked),
   *    status? ("queued"|"sent", user lines), queueId?}
   * History is the source of truth: each sync rebuilds the entries from it, keeping only what the
   * server cannot know yet (messages still queued, or sent/received while the history was loading).
   */
  const state = {
    config: null,
    sessionId: "",
    entries: [],
    seq: 0,
    clicks: [], // quick replies picked: the history shows no line for a payload, the widget adds it back
    queue: [], // messages waiting for a connection: [{id, text, message, ts}]
    connection: "connecting", // connecting | online | reconnecting | offline | unavailable
    ready: false, // connected, session confirmed, history synced, queue flushed
    everConnected: false,
    failedAttempts: 0,
    socket: null,
    open: false,
    unread: 0,
    awaitingReply: false,
    typingTimer: 0,
    stickToEnd: true, // the conversation follows new lines unless the user scrolled up to read
  };

  function makeEntry(fields) {
    state.seq += 1;
    return { id: state.seq, seq: state.seq, ts: nowSeconds(), buttons: [], origin: "live", text: "", ...fields };
  }

  function entryKey(entry) {
    return [entry.sender, entry.event || "", entry.agentName || "", (entry.text || "").trim(), entry.uploadId || ""].join("\u0001");
  }

  function normaliseButtons(list) {
    if (!Array.isArray(list)) return [];
    return list
      .filter((b) => b && (typeof b.title === "string" || typeof b.payload === "string"))
      .map((b) => ({ title: String(b.title || b.payload), payload: String(b.payload || b.title) }))
      .slice(0, 12);
  }

  /** A `bot_uttered` message (or the custom part of a history line) as an entry, or null. */
  function entryFromBotMessage(data, fields = {}) {
    if (!data || typeof data !== "object") return null;
    let text = typeof data.text === "string" ? data.text : "";
    const buttons = normaliseButtons(data.quick_replies || data.buttons);
    // live messages carry our fields under `metadata`, as Rasa's own do; history lines carry them inline
    const meta = data.metadata && typeof data.metadata === "object" ? data.metadata : data;
    const agentName = typeof meta.agent_name === "string" ? meta.agent_name.slice(0, 80) : "";
    if (typeof meta.handoff_event === "string") {
      return makeEntry({ sender: "banner", event: meta.handoff_event, agentName, text, buttons, ...fields });
    }
    if (meta.sender === "agent") {
      // the text names the specialist ("Dana: ...") for other clients; here the name is the label
      if (typeof meta.agent_text === "string") text = meta.agent_text;
      return makeEntry({ sender: "agent", agentName, text, buttons, ...fields });
    }
    if (!text.trim() && !buttons.length) return null;
    return makeEntry({ sender: "bot", text, buttons, ...fields });
  }

  /** The server's history as entries: bot texts split like the socketio channel splits them live. */
  function entriesFromHistory(messages) {
    const list = [];
    for (const m of messages) {
      if (!m || typeof m !== "object") continue;
      const ts = Number(m.timestamp) || nowSeconds();
      const base = { ts, origin: "history" };
      if (m.sender === "user") {
        if (typeof m.text === "string" && m.text) list.push(makeEntry({ sender: "user", text: m.text, status: "sent", ...base }));
      } else if (m.sender === "bot") {
        if (m.custom && typeof m.custom === "object") {
          const entry = entryFromBotMessage({ text: m.text, buttons: m.buttons, ...m.custom }, { ...base, pushedAfterStore: true });
          if (entry) list.push(entry);
          continue;
        }
        const parts = String(m.text || "").trim().split("\n\n");
        parts.forEach((part, i) => {
          const buttons = i === parts.length - 1 ? m.buttons : [];
          const entry = entryFromBotMessage({ text: part, buttons }, base);
          if (entry) list.push(entry);
        });
      }
    }
    numberButtonGroups(list);
    placeClicks(list);
    return list;
  }

  /** Numbers the entries that carry quick replies (0, 1, 2...): a picked reply remembers the number. */
  function numberButtonGroups(list) {
    let n = 0;
    for (const entry of list) entry.group = entry.buttons.length ? n++ : undefined;
  }

  /** Puts the quick replies the user picked back in a history that has no line for them. */
  function placeClicks(list) {
    const used = new Set();
    const queued = new Set(state.queue.map((q) => q.id));
    for (const click of state.clicks) {
      if (click.queueId && queued.has(click.queueId)) continue; // still waiting: shown from the queue
      const offers = (e) => e.buttons.some((b) => b.payload === click.payload && b.title === click.title);
      let target = list.find((e) => e.group === click.group && offers(e) && !used.has(e));
      if (!target) {
        const candidates = list.filter((e) => offers(e) && !used.has(e) && e.text.trim() === click.anchor);
        candidates.sort((a, b) => Math.abs(a.group - click.group) - Math.abs(b.group - click.group));
        target = candidates[0];
      }
      if (!target) continue;
      used.add(target);
      target.chosen = click.title;
      // after the lines that were already on screen below the replies when the user picked one
      let at = list.indexOf(target) + 1;
      const end = at + (Number(click.after) || 0);
      while (at < end && at < list.length && list[at].sender !== "user") at += 1;
      if (list[at] && list[at].sender === "user" && list[at].text === click.title) continue;
      const upper = list[at] ? list[at].ts : Infinity;
      const ts = Math.min(Math.max(Number(click.ts) || target.ts, target.ts), upper);
      list.splice(at, 0, makeEntry({ sender: "user", text: click.title, ts, origin: "history", status: "sent" }));
    }
  }

  function saveClicks() {
    storage.setJson(KEYS.clicks(state.sessionId), state.clicks.slice(-200));
  }

  function saveQueue() {
    storage.setJson(KEYS.queue(state.sessionId), state.queue);
  }

  /** The entry whose quick replies can still be used: the latest ones, if nothing was said after. */
  function activeButtonEntry() {
    for (let i = state.entries.length - 1; i >= 0; i -= 1) {
      const entry = state.entries[i];
      if (entry.uploadId) continue; // checking a file doesn't answer the bot's question
      if (entry.sender === "user") return null;
      if (entry.buttons.length) return entry.chosen ? null : entry;
    }
    return null;
  }

  /** Who answers now: {mode: "bot"} or {mode: "agent", agentName} while a specialist has the chat. */
  function handoffMode() {
    let current = { mode: "bot", agentName: "" };
    for (const entry of state.entries) {
      if (entry.sender !== "banner") continue;
      current = entry.event === "agent_joined" ? { mode: "agent", agentName: entry.agentName } : { mode: "bot", agentName: "" };
    }
    return current;
  }

  // ------------------------------------------------------------------ history sync

  let syncChain = Promise.resolve(true);

  function syncHistory() {
    syncChain = syncChain.then(doSync, doSync);
    return syncChain;
  }

  async function doSync() {
    const marker = state.seq;
    if (!state.sessionId) return true; // no conversation yet: the server issues the id on connect
    let messages;
    try {
      const url = `${state.config.serverUrl}/chat/history?session_id=${encodeURIComponent(state.sessionId)}`;
      const response = await fetch(url, { cache: "no-store", credentials: "omit" });
      if (!response.ok) throw new Error(`history: HTTP ${response.status}`);
      const body = await response.json();
      messages = Array.isArray(body.messages) ? body.messages : [];
    } catch (error) {
      console.warn("[bank-feed chat] could not load the conversation history", error);
      return false;
    }
    const before = state.entries;
    const history = entriesFromHistory(messages);

    // Lines the history cannot contain yet: sent or received while it loaded and not (yet) stored.
    const fresh = before.filter((e) => e.origin !== "history" && e.seq > marker && e.status !== "queued" && !e.uploadId);
    const tail = history.slice(-(fresh.length + 10));
    let cursor = 0;
    const unstored = [];
    for (const entry of fresh) {
      const key = entryKey(entry);
      const found = tail.findIndex((h, i) => i >= cursor && entryKey(h) === key);
      if (found === -1) unstored.push(entry);
      else cursor = found + 1;
    }
    const queued = before.filter((e) => e.status === "queued");

    // Custom lines (hand-off, notices) are stored, then pushed: one new to this tab may still arrive live.
    let same = 0;
    while (same < before.length && same < history.length && entryKey(before[same]) === entryKey(history[same])) same += 1;
    const until = Date.now() + LATE_DELIVERY_MS;
    for (const entry of history.slice(same)) if (entry.pushedAfterStore) entry.lateUntil = until;

    state.entries = mergeUploads([...history, ...unstored], before.filter((e) => e.uploadId));
    state.entries.push(...queued);
    numberButtonGroups(state.entries);
    render();
    return true;
  }

  /** The upload lines (local to this browser) put back among the server's lines, by time. */
  function mergeUploads(list, uploads) {
    const out = list.slice();
    for (const entry of uploads) {
      let at = out.length;
      while (at > 0 && !out[at - 1].uploadId && out[at - 1].ts > entry.ts) at -= 1;
      out.splice(at, 0, entry);
    }
    return out;
  }

  // ------------------------------------------------------------------ the connection

  function loadSocketIo() {
    return new Promise((resolve, reject) => {
      const hadIo = Object.prototype.hasOwnProperty.call(window, "io");
      const previous = window.io;
      const script = document.createElement("script");
      script.src = `${state.config.serverUrl}/chat/static/vendor/socket.io.min.js`;
      script.async = true;
      script.onload = () => {
        const lib = window.io;
        if (hadIo) window.io = previous; // leave the page's own Socket.IO client alone
        else delete window.io;
        if (typeof lib === "function") resolve(lib);
        else reject(new Error("the Socket.IO client did not load"));
      };
      script.onerror = () => reject(new Error("the Socket.IO client could not be downloaded"));
      document.head.append(script);
    });
  }

  async function connect() {
    let io;
    try {
      io = await loadSocketIo();
    } catch (error) {
      console.error("[bank-feed chat]", error);
      setConnection("unavailable");
      return;
    }
    const server = new URL(state.config.serverUrl);
    const socket = io(server.origin, {
      path: server.pathname.replace(/\/+$/, "") + state.config.socketPath,
      transports: ["websocket", "polling"],
      tryAllTransports: true,
      reconnectionDelay: 1000,
      reconnectionDelayMax: 10000,
      timeout: 10000,
    });
    state.socket = socket;

    socket.on("connect", () => {
      state.ready = false;
      socket.emit("session_request", { session_id: state.sessionId });
    });
    socket.on("session_confirm", async (sessionId) => {
      if (typeof sessionId === "string" && SESSION_ID.test(sessionId)) adoptSession(sessionId);
      state.everConnected = true;
      state.failedAttempts = 0;
      setConnection("online");
      await syncHistory();
      flushQueue();
    });
    socket.on("bot_uttered", onBotMessage);
    socket.on("disconnect", (reason) => {
      state.ready = false;
      setConnection(navigator.onLine === false ? "offline" : "reconnecting");
      if (reason === "io server disconnect") socket.connect(); // the server closed it: try again
    });
    socket.on("connect_error", () => {
      state.failedAttempts += 1;
      if (navigator.onLine === false) setConnection("offline");
      else if (state.everConnected) setConnection("reconnecting");
      else setConnection(state.failedAttempts >= 3 ? "unavailable" : "connecting");
    });
    window.addEventListener("offline", () => setConnection("offline"));
    window.addEventListener("online", () => {
      if (socket.connected && state.ready) {
        setConnection("online");
      } else if (!socket.connected) {
        setConnection("reconnecting");
        socket.connect();
      }
    });
  }

  /** Uses the id the server confirmed; what this browser kept under an id it replaced moves along. */
  function adoptSession(sessionId) {
    const previous = state.sessionId;
    if (sessionId === previous) return;
    state.sessionId = sessionId;
    storage.set(KEYS.session, sessionId);
    for (const key of [KEYS.clicks, KEYS.queue, KEYS.uploads]) {
      const kept = storage.getJson(key(previous), null);
      if (kept !== null) storage.setJson(key(sessionId), kept);
      storage.remove(key(previous));
    }
  }

  function onBotMessage(data) {
    const entry = entryFromBotMessage(data, { origin: "live" });
    if (!entry) return;
    const key = entryKey(entry);
    const now = Date.now();
    const twin = state.entries.find((e) => e.lateUntil > now && entryKey(e) === key);
    if (twin) {
      twin.lateUntil = 0; // already shown from the history
      return;
    }
    state.entries.push(entry);
    numberButtonGroups(state.entries);
    stopTyping();
    if (!state.open) state.unread += 1;
    render();
  }

  function sendUserMessage(text, payload, fromButton) {
    const message = (payload || text).slice(0, MAX_MESSAGE_LENGTH);
    if (fromButton) {
      const after = state.entries.length - 1 - state.entries.indexOf(fromButton);
      state.clicks.push({ group: fromButton.group, anchor: fromButton.text.trim(), title: text, payload, after, ts: nowSeconds() });
    }
    const entry = makeEntry({ sender: "user", text, origin: "local", status: "queued" });
    state.entries.push(entry);
    if (state.ready && state.queue.length === 0) {
      emitMessage(entry, message);
    } else {
      entry.queueId = entry.id + ":" + randomId(8);
      state.queue.push({ id: entry.queueId, text, message, ts: entry.ts });
      saveQueue();
      if (fromButton) state.clicks[state.clicks.length - 1].queueId = entry.queueId;
    }
    if (fromButton) saveClicks();
    render({ scroll: true });
  }

  // how this browser reads a time of day, so times the bot writes match the message times shown here
  function clockMetadata() {
    try {
      const options = new Intl.DateTimeFormat(undefined, { hour: "numeric", minute: "2-digit" }).resolvedOptions();
      return { timezone: options.timeZone, hour_cycle: options.hourCycle || (options.hour12 === false ? "h23" : "h12") };
    } catch (e) {
      return {};
    }
  }

  function emitMessage(entry, message) {
    state.socket.emit("user_uttered", {
      message,
      session_id: state.sessionId,
      // capabilities: this widget has the paperclip (POST /upload/analyse), so the bot may offer its file check
      metadata: { user_agent: navigator.userAgent, capabilities: "file_upload", ...clockMetadata() },
    });
    state.seq += 1;
    entry.seq = state.seq; // counts as "sent while the history loads" for the next sync
    entry.status = "sent";
    entry.queueId = undefined;
    startTyping();
  }

  function flushQueue() {
    const socket = state.socket;
    if (!socket || !socket.connected) return;
    const pending = state.queue.slice();
    for (const item of pending) {
      let entry = state.entries.find((e) => e.queueId === item.id);
      if (!entry) {
        entry = makeEntry({ sender: "user", text: item.text, origin: "local", status: "queued", queueId: item.id });
        state.entries.push(entry);
      }
      const click = state.clicks.find((c) => c.queueId === item.id);
      if (click) click.queueId = undefined;
      emitMessage(entry, item.message);
      state.queue.shift();
    }
    saveQueue();
    saveClicks();
    state.ready = socket.connected;
    render();
  }

  // ------------------------------------------------------------------ bank files (upload assistant)

  const uploadFiles = new Map(); // uploadId -> File, for the date-order question (this tab only)

  function saveUploads() {
    const lines = state.entries
      .filter((e) => e.uploadId && e.upload && e.upload.kind !== "pending")
      .slice(-40)
      .map((e) => ({ uploadId: e.uploadId, sender: e.sender, text: e.text, ts: e.ts, upload: e.upload }));
    storage.setJson(KEYS.uploads(state.sessionId), lines);
  }

  function loadUploads() {
    const lines = storage.getJson(KEYS.uploads(state.sessionId), []);
    if (!Array.isArray(lines)) return [];
    return lines
      .filter((l) => l && typeof l.uploadId === "string" && l.upload && typeof l.upload === "object")
      .map((l) => makeEntry({ sender: l.sender === "user" ? "user" : "bot", text: String(l.text || ""), ts: Number(l.ts) || nowSeconds(), origin: "upload", uploadId: l.uploadId, upload: l.upload, status: "sent" }));
  }

  function addUploadEntry(fields) {
    const entry = makeEntry({ origin: "upload", uploadId: randomId(12), status: "sent", ...fields });
    state.entries.push(entry);
    return entry;
  }

  /** Sends a bank file to the upload assistant; its report becomes an assistant message. */
  async function uploadFile(file, dateOrder = "", question = null) {
    if (!dateOrder) {
      addUploadEntry({ sender: "user", text: `Uploaded ${file.name}`, upload: { kind: "file", name: file.name } });
    }
    render({ scroll: true });
    startTyping();
    let entry;
    if (file.size > UPLOAD_MAX_BYTES) {
      entry = uploadError(file.name, `${file.name} is too big to check here (QuickBooks takes files up to 350 KB).`);
    } else {
      entry = await postFile(file, dateOrder);
    }
    state.entries.push(entry);
    if (entry.upload.kind === "question") uploadFiles.set(entry.uploadId, file);
    if (question) uploadFiles.delete(question.uploadId);
    stopTyping();
    if (!state.open) state.unread += 1;
    saveUploads();
    render();
  }

  async function postFile(file, dateOrder) {
    const form = new FormData();
    form.append("file", file, file.name);
    if (state.sessionId) form.append("sender", state.sessionId);
    if (dateOrder) form.append("date_order", dateOrder);
    let response;
    let body = null;
    try {
      response = await fetch(`${state.config.serverUrl}/upload/analyse`, { method: "POST", body: form, credentials: "omit", cache: "no-store" });
      body = await response.json().catch(() => null);
    } catch (error) {
      console.warn("[bank-feed chat] upload failed", error);
      return uploadError(file.name, `I couldn't send ${file.name} to be checked (no connection?). Please try again in a moment.`);
    }
    const reason = body && typeof body.error === "string" ? body.error : "";
    if (response.status === 413) {
      return uploadError(file.name, `${file.name} is too big to check here. QuickBooks takes files up to 350 KB: export a shorter date range and attach that.`);
    }
    if (response.status === 415) {
      return uploadError(file.name, `That upload wasn't sent as a file${reason ? ` (${reason})` : ""}. Please attach it again with the paperclip.`);
    }
    if (!response.ok || !body || typeof body !== "object") {
      return uploadError(file.name, `I couldn't check ${file.name}${reason ? `: ${reason}` : ` (error ${response.status})`}.`);
    }
    return reportEntry(body, file.name);
  }

  function uploadError(name, text) {
    return makeEntry({ sender: "bot", text, origin: "upload", uploadId: randomId(12), status: "sent", upload: { kind: "error", name } });
  }

  function problemLine(p) {
    const message = String(p.message || "");
    return p.row && !/^row\b/i.test(message) ? `Row ${p.row}: ${message}` : message;
  }

  /** The report JSON as an entry: summary, problems with rows, download links or the date question. */
  function reportEntry(report, name) {
    const summary = typeof report.message === "string" ? report.message : typeof report.plain_text === "string" ? report.plain_text : "";
    const allProblems = (Array.isArray(report.problems) ? report.problems : []).filter((p) => p && p.severity !== "info" && p.message);
    // the summary lists problems grouped ("- ..."): the list below has them row by row instead
    const lines = summary.split("\n").filter((l) => l.trim() && (!allProblems.length || !/^(- |\.\.\.and \d+ more problem)/.test(l)));
    if (!lines.length) {
      lines.push(report.ok ? `${name} looks ready for QuickBooks.` : `QuickBooks would reject ${name} as it is.`);
    }
    const files = (Array.isArray(report.converted) ? report.converted : [])
      .map((c) => ({ name: String(c.filename || "transactions.csv"), url: safeDownloadUrl(c.download_url), rows: Number(c.rows) || 0, kind: String(c.kind || "all") }))
      .filter((f) => f.url);
    const upload = {
      kind: "report",
      name,
      ok: report.ok === true,
      problems: allProblems.slice(0, UPLOAD_PROBLEMS_SHOWN).map(problemLine),
      more: Math.max(0, allProblems.length - UPLOAD_PROBLEMS_SHOWN),
      files,
    };
    const ask = report.needs_date_order;
    if (ask && typeof ask === "object" && ask.options && typeof ask.options === "object") {
      upload.kind = "question";
      upload.question = String(ask.question || "Which way are the dates written?");
      upload.options = Object.entries(ask.options)
        .filter(([order]) => DATE_ORDER_HINTS[order])
        .map(([order, label]) => ({ order, title: `${String(label).replace(/,? \d{4}$/, "")} (${DATE_ORDER_HINTS[order]})` }));
    }
    return makeEntry({ sender: "bot", text: lines.join("\n"), origin: "upload", uploadId: randomId(12), status: "sent", upload });
  }

  /** A download link of the upload assistant on serverUrl, or "" (nothing else becomes a link). */
  function safeDownloadUrl(value) {
    if (typeof value !== "string" || !value) return "";
    try {
      const base = new URL(`${state.config.serverUrl}/`);
      const url = new URL(value, base);
      if ((url.protocol !== "http:" && url.protocol !== "https:") || url.origin !== base.origin) return "";
      if (!/\/upload\/files\/[A-Za-z0-9_-]{32,100}$/.test(url.pathname)) return "";
      return url.href;
    } catch {
      return "";
    }
  }

  function uploadBubble(entry) {
    const u = entry.upload;
    if (entry.sender === "user") {
      return el("div", { class: "bfc-bubble bfc-upload-file" }, icon("clip", 16), el("span", { text: entry.text }));
    }
    const bubble = el("div", { class: `bfc-bubble bfc-upload bfc-upload--${u.kind}${u.kind === "report" && !u.ok ? " bfc-upload--problems" : ""}` });
    // the headline first, then the problems and the files, then the rest (how to upload it)
    const [headline, ...rest] = u.kind === "question" ? [u.question] : String(entry.text || "").split("\n");
    bubble.append(el("p", { class: "bfc-upload-text" }, linkify(headline || "")));
    if (u.kind === "error") return bubble;
    if (u.problems && u.problems.length) {
      const list = el("ul", { class: "bfc-upload-problems", "aria-label": "Problems found" });
      for (const line of u.problems) list.append(el("li", { text: line }));
      if (u.more) list.append(el("li", { class: "bfc-upload-more", text: `…and ${u.more} more` }));
      bubble.append(list);
    }
    if (u.files && u.files.length) {
      const expired = nowSeconds() - entry.ts > UPLOAD_LINK_TTL_S;
      const list = el("ul", { class: "bfc-upload-files", "aria-label": "Clean files for QuickBooks" });
      for (const f of u.files) {
        const label = `${f.name}${f.rows ? ` (${f.rows} rows)` : ""}${f.kind === "new_only" ? " · only rows newer than QuickBooks has" : ""}`;
        if (expired || f.used) {
          list.append(el("li", { class: "bfc-file-gone" }, icon("file", 16), el("span", { text: `${label} · ${f.used ? "downloaded" : "link expired, attach the file again"}` })));
        } else {
          const link = el("a", { class: "bfc-file-link", href: f.url, download: f.name, rel: "noopener", "data-file": f.name }, icon("file", 16), el("span", { text: `Download ${label}` }));
          list.append(el("li", {}, link));
        }
      }
      bubble.append(list);
      if (!expired) bubble.append(el("p", { class: "bfc-upload-note", text: "Each link works once, for an hour." }));
    }
    if (rest.length) bubble.append(el("p", { class: "bfc-upload-text bfc-upload-after" }, linkify(rest.join("\n"))));
    if (u.kind === "question") {
      const group = el("div", { class: "bfc-replies bfc-upload-choices", role: "group", "aria-label": "How are the dates written?" });
      const canResend = uploadFiles.has(entry.uploadId) && !u.chosen;
      for (const option of u.options || []) {
        const picked = u.chosen === option.order;
        group.append(el("button", {
          type: "button",
          class: `bfc-reply bfc-upload-choice${picked ? " bfc-reply--picked" : ""}`,
          "data-upload": entry.uploadId,
          "data-order": option.order,
          "aria-pressed": picked ? "true" : "false",
          disabled: !canResend,
          text: option.title,
        }));
      }
      bubble.append(group);
      if (!u.chosen && !uploadFiles.has(entry.uploadId)) {
        bubble.append(el("p", { class: "bfc-upload-note", text: "Attach the file again to answer this." }));
      }
    }
    return bubble;
  }

  function chooseDateOrder(button) {
    if (button.disabled) return;
    const entry = state.entries.find((e) => e.uploadId === button.dataset.upload);
    const file = entry && uploadFiles.get(entry.uploadId);
    const option = entry && (entry.upload.options || []).find((o) => o.order === button.dataset.order);
    if (!entry || !file || !option || entry.upload.chosen) return;
    entry.upload = { ...entry.upload, chosen: option.order };
    redrawEntry(entry);
    addUploadEntry({ sender: "user", text: option.title, upload: { kind: "choice", name: file.name } });
    uploadFile(file, option.order, entry);
    ui.input.focus();
  }

  function markDownloaded(link) {
    const entry = state.entries.find((e) => e.upload && e.upload.files && e.upload.files.some((f) => f.url === link.href));
    if (!entry) return;
    entry.upload = { ...entry.upload, files: entry.upload.files.map((f) => (f.url === link.href ? { ...f, used: true } : f)) };
    saveUploads();
    setTimeout(() => redrawEntry(entry), 0); // after the browser has followed the link
  }

  /** Rebuilds one entry's node (its content changed but not its key). */
  function redrawEntry(entry) {
    for (const node of ui.items.children) {
      if (node.bfcEntry === entry) {
        const fresh = createEntryNode(entry);
        fresh.bfcKey = node.bfcKey;
        node.replaceWith(fresh);
        return;
      }
    }
  }

  // ------------------------------------------------------------------ the user interface

  const ui = {};

  function buildUi() {
    const cfg = state.config;
    const host = el("div", { id: "bankfeedchat-root", "data-bankfeedchat": "" });
    host.style.display = "none"; // until the stylesheet has loaded
    const root = host.attachShadow({ mode: "open" });
    const stylesheet = el("link", { rel: "stylesheet", href: `${cfg.serverUrl}/chat/static/widget.css` });
    const shown = () => {
      host.style.display = "";
      scrollToEnd();
    };
    stylesheet.addEventListener("load", shown);
    stylesheet.addEventListener("error", shown);

    const frame = el("div", { class: "bfc" });
    frame.style.setProperty("--bfc-primary", cfg.primaryColor);
    frame.style.setProperty("--bfc-on-primary", cfg.textColor);

    ui.launcher = el(
      "button",
      {
        type: "button",
        class: "bfc-launcher",
        "aria-expanded": "false",
        "aria-controls": "bfc-panel",
        "aria-label": `Open chat: ${cfg.title}`,
      },
      icon("chat", 26),
      icon("close", 24),
    );
    ui.badge = el("span", { class: "bfc-badge", hidden: true, "aria-hidden": "true" });
    ui.launcher.append(ui.badge);

    ui.title = el("h2", { class: "bfc-title", id: "bfc-title", text: cfg.title });
    ui.subtitle = el("p", { class: "bfc-subtitle", text: cfg.subtitle });
    ui.closeButton = el("button", { type: "button", class: "bfc-close", "aria-label": "Close chat" }, icon("minimise"));
    const header = el(
      "header",
      { class: "bfc-header" },
      el("div", { class: "bfc-heading" }, ui.title, ui.subtitle),
      ui.closeButton,
    );

    ui.status = el("div", { class: "bfc-status", role: "status", "aria-live": "polite" });

    ui.items = el("div", { class: "bfc-items" });
    ui.log = el(
      "div",
      { class: "bfc-log", role: "log", "aria-live": "polite", "aria-relevant": "additions", "aria-label": "Conversation" },
      el(
        "div",
        { class: "bfc-row bfc-row--bot bfc-greeting" },
        el("div", { class: "bfc-msg" }, el("span", { class: "bfc-sr", text: "Assistant: " }), el("div", { class: "bfc-bubble", text: cfg.greeting })),
      ),
      ui.items,
    );
    ui.typing = el(
      "div",
      { class: "bfc-typing", hidden: true, "aria-hidden": "true" },
      el("span", { class: "bfc-dot" }),
      el("span", { class: "bfc-dot" }),
      el("span", { class: "bfc-dot" }),
    );
    ui.scroller = el("div", { class: "bfc-scroller" }, ui.log, ui.typing);

    ui.input = el("textarea", {
      id: "bfc-input",
      class: "bfc-input",
      rows: "1",
      placeholder: "Type your message…",
      autocomplete: "off",
      enterkeyhint: "send",
      "aria-describedby": "bfc-hint",
    });
    ui.sendButton = el("button", { type: "submit", class: "bfc-send", "aria-label": "Send message" }, icon("send"));
    ui.fileInput = el("input", {
      type: "file",
      class: "bfc-file-input",
      accept: UPLOAD_ACCEPT,
      tabindex: "-1",
      "aria-hidden": "true",
      hidden: true,
    });
    ui.attachButton = el(
      "button",
      {
        type: "button",
        class: "bfc-attach",
        "aria-label": "Attach a bank file",
        title: "Attach a bank file (.csv, .qbo, .qfx, .ofx, .txt): I'll check it and give back a clean file for QuickBooks",
        "aria-describedby": "bfc-attach-hint",
      },
      icon("clip"),
    );
    ui.form = el(
      "form",
      { class: "bfc-composer" },
      ui.fileInput,
      ui.attachButton,
      el("p", { id: "bfc-attach-hint", class: "bfc-sr", text: "Checks a bank export for QuickBooks Upload from file and gives back a clean copy." }),
      el("label", { for: "bfc-input", class: "bfc-sr", text: "Your message" }),
      ui.input,
      ui.sendButton,
      el("p", { id: "bfc-hint", class: "bfc-sr", text: "Press Enter to send, Shift+Enter for a new line. Never type passwords here." }),
    );
    const notice = el("p", { class: "bfc-notice", text: "Never share passwords or full card numbers in this chat." });
    // said when a message was longer than one message can hold (nothing is cut silently: the rest stays in the box)
    ui.limitNote = el("p", { class: "bfc-notice bfc-limit", role: "status", "aria-live": "polite", hidden: true });

    ui.panel = el(
      "section",
      { id: "bfc-panel", class: "bfc-panel", role: "dialog", "aria-modal": "false", "aria-labelledby": "bfc-title", hidden: true },
      header,
      ui.status,
      ui.scroller,
      ui.form,
      ui.limitNote,
      notice,
    );

    frame.append(ui.panel, ui.launcher);
    root.append(stylesheet, frame);
    ui.frame = frame;
    document.body.append(host);
    bindEvents();
  }

  function bindEvents() {
    ui.launcher.addEventListener("click", () => (state.open ? closePanel() : openPanel()));
    ui.closeButton.addEventListener("click", () => closePanel());
    ui.panel.addEventListener("keydown", (event) => {
      if (event.key === "Escape") {
        event.preventDefault();
        closePanel();
      }
    });
    ui.form.addEventListener("submit", (event) => {
      event.preventDefault();
      submitInput();
    });
    ui.input.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        submitInput();
      }
    });
    ui.input.addEventListener("input", autoGrow);
    ui.scroller.addEventListener("scroll", () => {
      const s = ui.scroller;
      if (s.clientHeight) state.stickToEnd = s.scrollHeight - s.scrollTop - s.clientHeight < 40;
    }, { passive: true });
    if (window.ResizeObserver) {
      // the panel appears, the phone keyboard opens, a line wraps: stay at the latest message
      const observer = new ResizeObserver(() => {
        if (state.stickToEnd) scrollToEnd();
      });
      observer.observe(ui.scroller);
      observer.observe(ui.items);
    }
    ui.attachButton.addEventListener("click", () => {
      ui.fileInput.value = "";
      ui.fileInput.click();
    });
    ui.fileInput.addEventListener("change", () => {
      const file = ui.fileInput.files && ui.fileInput.files[0];
      ui.fileInput.value = ""; // the same file can be picked again
      if (file) uploadFile(file);
    });
    ui.items.addEventListener("click", (event) => {
      const choice = event.target.closest("button.bfc-upload-choice");
      if (choice) {
        chooseDateOrder(choice);
        return;
      }
      const link = event.target.closest("a.bfc-file-link");
      if (link) {
        markDownloaded(link);
        return;
      }
      const button = event.target.closest("button.bfc-reply");
      if (!button || button.disabled) return;
      const entry = state.entries.find((e) => e.id === Number(button.dataset.entry));
      const reply = entry && entry.buttons[Number(button.dataset.index)];
      if (!entry || !reply || entry !== activeButtonEntry()) return;
      entry.chosen = reply.title;
      sendUserMessage(reply.title, reply.payload, entry);
      ui.input.focus();
    });
    // page elements that open the chat (<a data-bankfeedchat-open href="#">Chat with us</a>)
    document.addEventListener("click", (event) => {
      const opener = event.target instanceof Element && event.target.closest("[data-bankfeedchat-open]");
      if (opener) {
        event.preventDefault();
        openPanel();
      }
    });
  }

  function submitInput() {
    const text = ui.input.value.trim();
    if (!text) return;
    const [send, rest] = splitAtLimit(text);
    ui.input.value = rest;
    autoGrow();
    sendUserMessage(send, null, null);
    ui.limitNote.hidden = !rest;
    ui.limitNote.textContent = rest
      ? `One message holds at most ${MAX_MESSAGE_LENGTH.toLocaleString("en-US")} characters, so I sent the first ` +
        `${send.length.toLocaleString("en-US")} and kept the other ${rest.length.toLocaleString("en-US")} in the box: send them next, or shorten them.`
      : "";
  }

  /** [what fits in one message, the rest]: cut at the last space before the limit when there is one near it. */
  function splitAtLimit(text) {
    if (text.length <= MAX_MESSAGE_LENGTH) return [text, ""];
    const space = text.lastIndexOf(" ", MAX_MESSAGE_LENGTH);
    const at = space > MAX_MESSAGE_LENGTH * 0.8 ? space : MAX_MESSAGE_LENGTH;
    return [text.slice(0, at).trimEnd(), text.slice(at).trimStart()];
  }

  function autoGrow() {
    ui.input.style.height = "auto";
    ui.input.style.height = `${Math.min(ui.input.scrollHeight, 120)}px`;
  }

  function openPanel({ focus = true, animate = true } = {}) {
    state.open = true;
    ui.panel.classList.toggle("bfc-panel--animate", animate);
    state.unread = 0;
    tabStorage.set(KEYS.open, "1");
    ui.panel.hidden = false;
    ui.frame.classList.add("bfc--open");
    ui.launcher.setAttribute("aria-expanded", "true");
    ui.launcher.setAttribute("aria-label", `Close chat: ${state.config.title}`);
    updateBadge();
    scrollToEnd();
    if (focus) ui.input.focus({ preventScroll: true });
  }

  function closePanel() {
    const hadFocus = ui.panel.contains(ui.panel.getRootNode().activeElement);
    state.open = false;
    tabStorage.set(KEYS.open, "0");
    ui.panel.hidden = true;
    ui.frame.classList.remove("bfc--open");
    ui.launcher.setAttribute("aria-expanded", "false");
    ui.launcher.setAttribute("aria-label", `Open chat: ${state.config.title}`);
    if (hadFocus) ui.launcher.focus();
  }

  function updateBadge() {
    const count = state.open ? 0 : state.unread;
    ui.badge.hidden = count === 0;
    ui.badge.textContent = count > 9 ? "9+" : String(count);
    const action = state.open ? "Close" : "Open";
    const unread = count ? ` (${count} new ${count === 1 ? "message" : "messages"})` : "";
    ui.launcher.setAttribute("aria-label", `${action} chat: ${state.config.title}${unread}`);
  }

  const STATUS_TEXT = {
    connecting: "Connecting…",
    online: "",
    reconnecting: "Reconnecting… Messages you write now will be sent when the connection is back.",
    offline: "You're offline. Messages you write now will be sent when you're back online.",
    unavailable: "Can't reach the chat right now. Still trying…",
  };

  function setConnection(status) {
    if (status !== "online") stopTyping();
    state.connection = status;
    ui.status.textContent = STATUS_TEXT[status] || "";
    ui.status.dataset.state = status;
    ui.status.hidden = !STATUS_TEXT[status];
    ui.frame.dataset.connection = status;
  }

  function startTyping() {
    if (handoffMode().mode === "agent") return; // a person types at their own pace
    state.awaitingReply = true;
    ui.typing.hidden = false;
    clearTimeout(state.typingTimer);
    state.typingTimer = setTimeout(stopTyping, TYPING_TIMEOUT_MS);
    if (state.stickToEnd) scrollToEnd();
  }

  function stopTyping() {
    state.awaitingReply = false;
    clearTimeout(state.typingTimer);
    if (ui.typing) ui.typing.hidden = true;
  }

  // ------------------------------------------------------------------ rendering

  /** The entries plus day separators, each with a key that says whether its node can be kept. */
  function viewItems() {
    const items = [];
    let day = "";
    for (const entry of state.entries) {
      const date = new Date(entry.ts * 1000);
      const thisDay = date.toDateString();
      if (thisDay !== day) {
        // no "Today" line above a conversation that started today
        if (day || thisDay !== new Date().toDateString()) items.push({ key: `day\u0001${thisDay}`, day: date });
        day = thisDay;
      }
      items.push({ key: `entry\u0001${entryKey(entry)}`, entry });
    }
    return items;
  }

  function render({ scroll = false } = {}) {
    if (!ui.items) return;
    const items = viewItems();
    const nodes = Array.from(ui.items.children);
    let same = 0;
    while (same < items.length && same < nodes.length && nodes[same].bfcKey === items[same].key) {
      if (items[same].entry) updateEntryNode(nodes[same], items[same].entry);
      same += 1;
    }
    for (let i = nodes.length - 1; i >= same; i -= 1) nodes[i].remove();
    for (let i = same; i < items.length; i += 1) {
      const item = items[i];
      const node = item.entry ? createEntryNode(item.entry) : createDayNode(item.day);
      node.bfcKey = item.key;
      ui.items.append(node);
    }
    refreshReplies();
    const handoff = handoffMode();
    ui.input.placeholder = handoff.mode === "agent" ? `Message ${handoff.agentName || "the specialist"}…` : "Type your message…";
    const last = state.entries[state.entries.length - 1];
    if (last && last.sender !== "user") stopTyping();
    updateBadge();
    if (scroll || state.stickToEnd) scrollToEnd();
  }

  function createDayNode(date) {
    return el("div", { class: "bfc-day" }, el("span", { text: dayLabel(date) }));
  }

  function timeNode(entry) {
    const date = new Date(entry.ts * 1000);
    return el("time", { class: "bfc-time", datetime: date.toISOString(), text: timeFormat.format(date) });
  }

  const BANNER_TITLES = {
    agent_joined: (name) => `${name || "A specialist"} (specialist) joined the chat`,
    agent_left: () => "You're back with the assistant",
    closed: (name) => `${name || "The specialist"} closed the conversation · you're back with the assistant`,
  };

  function createEntryNode(entry) {
    let node;
    if (entry.sender === "banner") {
      const title = (BANNER_TITLES[entry.event] || (() => "Chat update"))(entry.agentName);
      node = el(
        "div",
        { class: `bfc-row bfc-row--banner bfc-banner--${entry.event === "agent_joined" ? "joined" : "left"}` },
        el(
          "div",
          { class: "bfc-banner" },
          el("p", { class: "bfc-banner-title", text: title }),
          entry.text ? el("p", { class: "bfc-banner-text" }, linkify(entry.text)) : null,
          timeNode(entry),
        ),
      );
    } else {
      const who = { user: "You", bot: "Assistant", agent: `${entry.agentName || "Specialist"} (specialist)` }[entry.sender];
      const label =
        entry.sender === "agent"
          ? el("div", { class: "bfc-name" }, el("span", { text: entry.agentName || "Specialist" }), el("span", { class: "bfc-role", text: "Specialist" }))
          : el("span", { class: "bfc-sr", text: `${who}: ` });
      const bubble = entry.upload
        ? uploadBubble(entry)
        : entry.text
          ? el("div", { class: "bfc-bubble" }, entry.sender === "user" ? entry.text : linkify(entry.text))
          : null;
      const foot = el("div", { class: "bfc-foot" }, entry.sender === "agent" ? null : el("span", { class: "bfc-sr", text: `${who}, ` }), timeNode(entry), el("span", { class: "bfc-state" }));
      node = el("div", { class: `bfc-row bfc-row--${entry.sender}` }, el("div", { class: "bfc-msg" }, label, bubble, foot));
    }
    if (entry.buttons.length) {
      const group = el("div", { class: "bfc-replies", role: "group", "aria-label": "Suggested replies" });
      entry.buttons.forEach((button, index) => {
        group.append(
          el("button", { type: "button", class: "bfc-reply", "data-entry": entry.id, "data-index": index, text: button.title }),
        );
      });
      node.append(group);
    }
    node.bfcEntry = entry;
    updateEntryNode(node, entry);
    return node;
  }

  /** Brings a kept node up to date with its (possibly new) entry: time, delivery state, ids. */
  function updateEntryNode(node, entry) {
    node.bfcEntry = entry;
    const time = node.querySelector(".bfc-time");
    if (time) {
      const date = new Date(entry.ts * 1000);
      time.dateTime = date.toISOString();
      time.textContent = timeFormat.format(date);
    }
    const stateNode = node.querySelector(".bfc-state");
    if (stateNode) {
      const queued = entry.status === "queued";
      stateNode.textContent = queued ? " · Not sent yet" : "";
      node.classList.toggle("bfc-row--queued", queued);
    }
    node.querySelectorAll("button.bfc-reply").forEach((b) => {
      b.dataset.entry = String(entry.id);
    });
  }

  function refreshReplies() {
    const active = activeButtonEntry();
    for (const node of ui.items.children) {
      const entry = node.bfcEntry;
      if (!entry || !entry.buttons.length) continue;
      const enabled = entry === active;
      node.classList.toggle("bfc-row--answered", !enabled);
      node.querySelectorAll("button.bfc-reply").forEach((b) => {
        const wasFocused = b.getRootNode().activeElement === b;
        b.disabled = !enabled;
        const picked = Boolean(entry.chosen) && entry.buttons[Number(b.dataset.index)].title === entry.chosen;
        b.classList.toggle("bfc-reply--picked", picked);
        b.setAttribute("aria-pressed", picked ? "true" : "false");
        if (wasFocused && !enabled) ui.input.focus();
      });
    }
  }

  function scrollToEnd() {
    if (!ui.scroller) return;
    ui.scroller.scrollTop = ui.scroller.scrollHeight;
    state.stickToEnd = true;
  }

  // ------------------------------------------------------------------ start

  function start() {
    state.config = readConfig(window.BankFeedChat || {});
    state.sessionId = loadSessionId();
    state.clicks = storage.getJson(KEYS.clicks(state.sessionId), []).filter((c) => c && typeof c.title === "string");
    state.queue = storage.getJson(KEYS.queue(state.sessionId), []).filter((q) => q && typeof q.message === "string");
    for (const item of state.queue) {
      state.entries.push(makeEntry({ sender: "user", text: String(item.text || item.message), ts: Number(item.ts) || nowSeconds(), origin: "local", status: "queued", queueId: item.id }));
    }
    state.entries = [...loadUploads(), ...state.entries]; // this browser's upload lines, then the queue
    buildUi();
    setConnection("connecting");
    render();

    const remembered = tabStorage.get(KEYS.open);
    if (remembered === "1" || (remembered === null && state.config.startOpen)) openPanel({ focus: false, animate: false });

    window.BankFeedChatWidget = Object.freeze({
      open: () => openPanel(),
      close: () => closePanel(),
      get sessionId() {
        return state.sessionId;
      },
    });

    syncHistory();
    connect();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start, { once: true });
  else start();
})();
