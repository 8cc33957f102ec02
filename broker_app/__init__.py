"""Routes and execution policies as loaded; later orders, fills and the
paper position registry, behind the broker adapter interface."""
