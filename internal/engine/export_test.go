package engine

// OnDispatcherBusy has f called each time DispatchFreed finds the
// dispatcher's lock taken and looks again later.
func (e *Engine) OnDispatcherBusy(f func()) { e.dispatcherBusy = f }
