"""Choice sets for broker_app models: the engine's order enums (``ifns_paper.engine.orders``)."""

from django.db import models

from ifns_paper.engine.orders import Liquidity, OrderStatus, OrderType, Side, TimeInForce

OrderSide = models.TextChoices("OrderSide", [(s.name, (s.value, s.value)) for s in Side])
OrderStatusChoices = models.TextChoices("OrderStatusChoices", [(s.name, (s.value, s.value.replace("_", " ")))
                                                               for s in OrderStatus])
OrderTypeChoices = models.TextChoices("OrderTypeChoices", [(s.name, (s.value, s.value.replace("_", " ")))
                                                           for s in OrderType])
TimeInForceChoices = models.TextChoices("TimeInForceChoices", [(s.name, (s.value, s.value)) for s in TimeInForce])
LiquidityChoices = models.TextChoices("LiquidityChoices", [(s.name, (s.value, s.value)) for s in Liquidity])
