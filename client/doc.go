// Package client is the Go client of renderfarm, a self-hosted Blender render
// farm that speaks the Renderjuice external API v1. Because the wire format is
// Renderjuice's, the client is meant to work against Renderjuice too, for the
// routes and fields the two share.
//
// The usual flow of a pipeline is: upload a .blend (or a .zip of a project)
// with [Client.UploadFile], make a job of it with [Client.CreateJob], ask for
// it to be checked with [Client.Validate], wait for [StatusValidated] with
// [Client.Wait], start the render with [Client.Render], wait for
// [StatusCompleted], then fetch the frames listed by [Client.Downloads] with
// [Client.DownloadFile]. The package example shows the whole flow.
//
// Every method takes a context, so a pipeline decides how long it is willing
// to wait and can stop a call (or a long [Client.Wait]) at any time. Errors
// say what was being done ("create job: 400 INVALID_STATE: …"); errors the
// server answered are an [*APIError] underneath, which [errors.As] and helpers
// such as [IsNotFound] reach through the wrapping.
//
// The wire types here mirror the JSON the server sends. Fields a request
// leaves out fall back to what the server found in the file, which is why
// [RenderConfig] is made of pointers: use [Int], [String] and [Bool] to fill
// it in a struct literal.
package client
