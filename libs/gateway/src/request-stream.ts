import { type Bus, type DoneEvent, type ProgressEvent, type SubmitMessage, type SubmitReply, type Subjects, base64ToF32, channels, publish, request, subscribe } from "@switchyard/contract";
import { Code, SwitchyardError } from "@switchyard/errors";

export interface RequestHandlers {
  accepted?(reply: SubmitReply): void;
  progress?(e: ProgressEvent): void;
  done(images: Float32Array[], e: DoneEvent): void;
  error(e: SwitchyardError): void;
}

export interface RequestHandle {
  /** Cancels the request at the scheduler (before its next tick); no more callbacks. */
  cancel(): void;
}

/**
 * Submits a request to a scheduler over the bus and follows its events. Subscribes
 * before submitting so that no event is missed; exactly one of done/error is called.
 */
export function startRequest(bus: Bus, subjects: Subjects, model: string, submit: SubmitMessage, submitTimeoutMs: number, h: RequestHandlers): RequestHandle {
  let finished = false;
  const images: Float32Array[] = new Array(submit.params.count);
  const finish = () => {
    finished = true;
    sub.unsubscribe();
  };
  const ch = channels(subjects);
  // An event that does not fit the contract fails the request (INTERNAL: the scheduler is broken), rather than hanging it.
  const invalid = (e: SwitchyardError) => {
    if (finished) return;
    finish();
    h.error(new SwitchyardError(`the scheduler sent an invalid event: ${e.rawMessage}`, Code.Internal, { cause: e }));
  };
  const sub = subscribe(bus, ch.events(submit.requestId), (e) => {
    if (finished) return;
    switch (e.type) {
      case "progress":
        h.progress?.(e);
        break;
      case "image":
        images[e.index] = base64ToF32(e.data);
        break;
      case "done":
        finish();
        h.done(images, e);
        break;
      case "error":
        finish();
        h.error(new SwitchyardError(e.message, e.code as Code));
        break;
    }
  }, invalid);
  void (async () => {
    try {
      await bus.flush();
      // The trace context goes as NATS headers (W3C traceparent), the way NATS carries it.
      const { trace, ...body } = submit;
      const reply = await request(bus, ch.intake(model), body, { timeoutMs: submitTimeoutMs, ...(trace ? { headers: trace } : {}) });
      if (!finished) h.accepted?.(reply);
    } catch (err) {
      if (finished) return;
      finish();
      const se = SwitchyardError.from(err);
      // no scheduler answering is a transient condition for the client
      h.error(se.code === Code.DeadlineExceeded ? new SwitchyardError(`no scheduler accepted the request: ${se.rawMessage}`, Code.Unavailable, { cause: err }) : se);
    }
  })();
  return {
    cancel() {
      if (finished) return;
      finish();
      publish(bus, ch.cancel, { requestId: submit.requestId });
    },
  };
}
