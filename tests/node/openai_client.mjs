// The official openai npm client against the server at $BASE_URL: a completion,
// a stream, the model list and three error statuses; prints one JSON report.
import OpenAI from "openai";

const client = new OpenAI({ baseURL: process.env.BASE_URL, apiKey: process.env.API_KEY, maxRetries: 0 });
const model = process.env.MODEL;
const messages = [{ role: "user", content: process.env.PROMPT }];

const completion = await client.chat.completions.create({ model, messages });

const stream = await client.chat.completions.create({ model, messages, stream: true });
let streamed = "";
let firstRole = null;
let finishReason = null;
for await (const chunk of stream) {
  const choice = chunk.choices[0];
  if (firstRole === null) firstRole = choice.delta.role ?? "missing";
  streamed += choice.delta.content ?? "";
  if (choice.finish_reason) finishReason = choice.finish_reason;
}

const models = [];
for await (const entry of client.models.list()) models.push(entry.id);

async function statusOf(call) {
  try {
    await call();
    return "no error";
  } catch (error) {
    if (error instanceof OpenAI.APIError) return error.status;
    throw error;
  }
}
const badKeyClient = new OpenAI({ baseURL: process.env.BASE_URL, apiKey: "wrong", maxRetries: 0 });
const errors = {
  badKey: await statusOf(() => badKeyClient.chat.completions.create({ model, messages })),
  unknownModel: await statusOf(() => client.chat.completions.create({ model: "no-such-model", messages })),
  badRequest: await statusOf(() => client.chat.completions.create({ model, messages, n: 2 })),
};

console.log(JSON.stringify({
  completion: completion.choices[0].message.content,
  streamed,
  firstRole,
  finishReason,
  models,
  errors,
}));
