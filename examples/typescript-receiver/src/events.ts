// The relay's webhook body: {"type", "timestamp", "data": <task resource>}.

export type TaskStatus = "queued" | "running" | "succeeded" | "failed" | "timed_out";
export type EventType = "task.progress" | "task.succeeded" | "task.failed" | "task.timed_out";

export interface TaskResult {
  images: string[];
  grid_image: string | null;
  videos: string[];
  content: string[];
  seed: string | null;
}

export interface Task {
  task_id: string;
  status: TaskStatus;
  upstream_status: string | null;
  progress: number | null;
  task_type: string | null;
  model: string | null;
  result: TaskResult;
  error: string | null;
  webhook_url: string | null;
  events: EventType[];
  metadata: Record<string, unknown>;
  registered_at: string;
  updated_at: string;
  completed_at: string | null;
  polls: number;
}

export interface RelayEvent {
  type: EventType;
  timestamp: string;
  data: Task;
}

export function isRelayEvent(value: unknown): value is RelayEvent {
  if (typeof value !== "object" || value === null) return false;
  const event = value as Record<string, unknown>;
  const data = event.data as Record<string, unknown> | null | undefined;
  return (
    typeof event.type === "string" &&
    typeof event.timestamp === "string" &&
    typeof data === "object" &&
    data !== null &&
    typeof data.task_id === "string" &&
    typeof data.status === "string"
  );
}
