package webhook

// ForbiddenPrefixes lets the tests of package webhook_test walk the whole
// list.
var ForbiddenPrefixes = forbiddenPrefixes
