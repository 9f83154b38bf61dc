// Card entry on the pay and Add a Card pages. The card's inputs carry no name, so the
// browser never posts them to the client area: on submit, this script hands the card to
// the card processor and posts only its token (card_token).
//   - Stripe: the Payment Element (in Stripe's frames) and stripe.createPaymentMethod.
//   - The sandbox: the typed number is checked here and mapped to the name of one of
//     the sandbox's public test cards; only that name and the expiry go to the sandbox's
//     tokenizer (demonstrations only), never the number or the security code.
// It also shows the card's fields only while "A new card" is chosen, and follows the
// link to the card holder's bank (3-D Secure) at once.
(function () {
  "use strict";

  var follow = document.querySelector("a[data-follow-now]");
  if (follow) {
    window.location.assign(follow.href);
    return;
  }

  var form = document.querySelector("form[data-pay-form]");
  var configNode = document.getElementById("card-entry-config");
  if (!form || !configNode) {
    return;
  }
  var config = JSON.parse(configNode.textContent);
  var entry = form.querySelector("[data-card-entry]");
  var errors = form.querySelector("[data-card-errors]");
  var tokenInput = form.querySelector("input[name=card_token]");
  var alwaysCard = form.hasAttribute("data-always-card");
  var busy = false;

  function newCardChosen() {
    if (alwaysCard) {
      return true;
    }
    var chosen = form.querySelector("input[name=method]:checked");
    return Boolean(chosen && chosen.value === "new_card");
  }

  function showFields() {
    var on = newCardChosen();
    if (entry) {
      entry.hidden = !on;
    }
    form.querySelectorAll("[data-card-only]").forEach(function (node) {
      node.hidden = !on;
    });
  }

  // The tokenizer's own refusal, in words for the card holder (unlike a browser's
  // "Failed to fetch" or a parser's error when a login page comes back instead of JSON).
  function Refusal(message) {
    this.message = message;
  }

  function showError(message) {
    errors.textContent = message;
    busy = false;
  }

  function submitWith(token) {
    tokenInput.value = token;
    busy = true;
    form.submit();
  }

  // --- the sandbox ------------------------------------------------------------------

  function digits(text) {
    return text.replace(/[\s-]/g, "");
  }

  function luhnValid(number) {
    if (!/^[0-9]{12,19}$/.test(number)) {
      return false;
    }
    var total = 0;
    for (var i = 0; i < number.length; i++) {
      var d = Number(number.charAt(number.length - 1 - i));
      if (i % 2 === 1) {
        d *= 2;
        if (d > 9) {
          d -= 9;
        }
      }
      total += d;
    }
    return total % 10 === 0;
  }

  function field(name) {
    return form.querySelector("[data-card=" + name + "]");
  }

  function sandboxToken() {
    var number = digits(field("number").value);
    var month = field("exp_month").value;
    var year = field("exp_year").value;
    var cvc = field("cvc").value.trim();
    if (!number) {
      return showError("Enter the card number.");
    }
    if (!luhnValid(number)) {
      return showError("That card number is not valid: check the digits.");
    }
    if (!month || !year) {
      return showError("Choose the expiry month and year.");
    }
    var wanted = /^3[47]/.test(number) ? 4 : 3;
    if (!new RegExp("^[0-9]{" + wanted + "}$").test(cvc)) {
      return showError("Enter the " + wanted + "-digit security code.");
    }
    var name = config.cards[number];
    if (!name) {
      return showError("This is a test (sandbox) gateway: use one of its test card numbers.");
    }
    if (!config.tokenizer_url) {
      return showError("The sandbox takes cards only in demonstrations.");
    }
    var body = new FormData();
    body.append("csrfmiddlewaretoken", form.querySelector("[name=csrfmiddlewaretoken]").value);
    var pin = form.querySelector("[name=_account]");
    if (pin) {
      body.append("_account", pin.value);
    }
    body.append("card", name);
    body.append("exp_month", month);
    body.append("exp_year", year);
    fetch(config.tokenizer_url, { method: "POST", body: body, credentials: "same-origin" })
      .then(function (response) {
        return response.json().then(function (answer) {
          if (!response.ok) {
            throw new Refusal(answer.error || "The card could not be checked: try again.");
          }
          return answer;
        });
      })
      .then(function (answer) {
        submitWith(answer.id);
      })
      .catch(function (error) {
        showError(
          error instanceof Refusal ? error.message : "The card could not be checked: try again."
        );
      });
  }

  // --- Stripe ---------------------------------------------------------------------------

  var stripe = null;
  var elements = null;

  function mountStripe() {
    if (typeof window.Stripe !== "function") {
      showError("The card form could not be loaded: check your connection and reload the page.");
      return;
    }
    stripe = window.Stripe(config.publishable_key);
    var options = {
      mode: config.mode,
      currency: config.currency,
      paymentMethodCreation: "manual",
      paymentMethodTypes: ["card"],
    };
    if (config.mode === "payment") {
      options.amount = config.amount;
    }
    elements = stripe.elements(options);
    elements.create("payment").mount(form.querySelector("[data-stripe-element]"));
  }

  function stripeToken() {
    if (!stripe || !elements) {
      return showError("The card form could not be loaded: reload the page.");
    }
    elements
      .submit()
      .then(function (result) {
        if (result.error) {
          throw result.error;
        }
        return stripe.createPaymentMethod({ elements: elements });
      })
      .then(function (result) {
        if (result.error) {
          throw result.error;
        }
        submitWith(result.paymentMethod.id);
      })
      .catch(function (error) {
        showError(error.message || "The card could not be checked: try again.");
      });
  }

  // --- the form ---------------------------------------------------------------------

  // "Apply my credit first": the button and the methods' heading say what is left.
  function showAmounts() {
    var credit = form.querySelector("input[name=apply_credit]");
    var rest = Boolean(credit && credit.checked);
    form.querySelectorAll("[data-label-rest]").forEach(function (node) {
      node.textContent = node.getAttribute(rest ? "data-label-rest" : "data-label-full");
    });
  }

  form.addEventListener("change", function (event) {
    if (event.target.name === "method") {
      showFields();
    } else if (event.target.name === "apply_credit") {
      showAmounts();
    }
  });

  form.addEventListener("submit", function (event) {
    if (!newCardChosen()) {
      return; // credit, a stored card, bank transfer: the form as it is
    }
    event.preventDefault();
    if (busy) {
      return;
    }
    busy = true;
    errors.textContent = "";
    if (config.gateway === "stripe") {
      stripeToken();
    } else {
      sandboxToken();
    }
  });

  // A token is good for the card typed now only: never one a page came back with.
  tokenInput.value = "";
  if (config.gateway === "stripe") {
    mountStripe();
  }
  showFields();
  showAmounts();
})();
