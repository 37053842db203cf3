import { type Bus, type Json, type Subjects, unwrapReply } from "@switchyard/bus";
import { Code, SwitchyardError } from "@switchyard/errors";
import { type RequestEvent, type SubmitMessage, type SubmitReply, base64ToF32 } from "@switchyard/scheduler";

export interface RequestHandlers {
  accepted?(reply: SubmitReply): void;
  progress?(e: Extract<RequestEvent, { type: "progress" }>): void;
  done(images: Float32Array[], e: Extract<RequestEvent, { type: "done" }>): void;
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
  const sub = bus.subscribe(subjects.events(submit.requestId), (payload) => {
    if (finished) return;
    const e = payload as unknown as RequestEvent;
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
  });
  void (async () => {
    try {
      await bus.flush();
      // The trace context goes as NATS headers (W3C traceparent), the way NATS carries it.
      const { trace, ...body } = submit;
      const reply = unwrapReply(await bus.request(subjects.intake(model), body as unknown as Json, { timeoutMs: submitTimeoutMs, ...(trace ? { headers: trace } : {}) })) as unknown as SubmitReply;
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
      bus.publish(subjects.cancel, { requestId: submit.requestId });
    },
  };
}
